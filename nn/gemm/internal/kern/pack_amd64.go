//go:build amd64 && !purego

package kern

// TransPanel8 transposes an 8-row block: dst[p*dstride/4+r] = rows[r][p]
// for r < 8 and p < kb, with kb a multiple of 8. AVX2.
//
//go:noescape
func TransPanel8(dst *float32, rows *[8]*float32, kb int, dstride int)

// TransPanel4 is TransPanel8 for a 4-row block. AVX2.
//
//go:noescape
func TransPanel4(dst *float32, rows *[4]*float32, kb int, dstride int)

// CopyPanel4 copies a k x w block into rows of W floats, zero-filling
// columns w..W-1: dst[p*W+j] = src[p*ld+j] for j < w. W must be a multiple
// of 4 and w <= W; src lanes past w are never read. AVX2.
//
//go:noescape
func CopyPanel4(dst, src *float32, ld, k, w, W int)

// CopyBlock packs nsl full slivers of nr columns (nr a multiple of 8),
// reading src row by row so that hardware prefetching sees one stream:
// dst[s*k*nr+p*nr+j] = src[p*ld+s*nr+j]. AVX2.
//
//go:noescape
func CopyBlock(dst, src *float32, ld, k, nsl, nr int)

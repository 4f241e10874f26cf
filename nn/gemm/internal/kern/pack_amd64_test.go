//go:build amd64 && !purego

package kern

import (
	"fmt"
	"testing"

	"golang.org/x/sys/cpu"
)

func needAVX2(t *testing.T) {
	if !cpu.X86.HasAVX2 {
		t.Skip("no AVX2")
	}
}

func seq(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(i + 1)
	}
	return s
}

func TestTransPanel(t *testing.T) {
	needAVX2(t)
	cases := []struct {
		rows, kb, ld, W int
	}{
		{8, 8, 8, 8}, {8, 24, 30, 16}, {4, 16, 17, 12}, {4, 8, 9, 4},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("rows%d/kb%d/ld%d/W%d", tc.rows, tc.kb, tc.ld, tc.W), func(t *testing.T) {
			src := seq(tc.rows * tc.ld)
			dst := make([]float32, tc.kb*tc.W)
			if tc.rows == 8 {
				var rows [8]*float32
				for r := range rows {
					rows[r] = &src[r*tc.ld]
				}
				TransPanel8(&dst[0], &rows, tc.kb, 4*tc.W)
			} else {
				var rows [4]*float32
				for r := range rows {
					rows[r] = &src[r*tc.ld]
				}
				TransPanel4(&dst[0], &rows, tc.kb, 4*tc.W)
			}
			for p := 0; p < tc.kb; p++ {
				for r := 0; r < tc.W; r++ {
					want := float32(0)
					if r < tc.rows {
						want = src[r*tc.ld+p]
					}
					if got := dst[p*tc.W+r]; got != want {
						t.Fatalf("dst[%d*W+%d] = %v, want %v", p, r, got, want)
					}
				}
			}
		})
	}
}

func TestCopyPanel4(t *testing.T) {
	needAVX2(t)
	cases := []struct{ k, ld, w, W int }{
		{3, 20, 12, 12}, {5, 13, 7, 12}, {2, 40, 33, 48}, {4, 4, 1, 4}, {1, 9, 9, 16},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("k%d/ld%d/w%d/W%d", tc.k, tc.ld, tc.w, tc.W), func(t *testing.T) {
			src := seq((tc.k-1)*tc.ld + tc.w) // nothing past the last valid lane
			dst := make([]float32, tc.k*tc.W)
			for i := range dst {
				dst[i] = -1
			}
			CopyPanel4(&dst[0], &src[0], tc.ld, tc.k, tc.w, tc.W)
			for p := 0; p < tc.k; p++ {
				for j := 0; j < tc.W; j++ {
					want := float32(0)
					if j < tc.w {
						want = src[p*tc.ld+j]
					}
					if got := dst[p*tc.W+j]; got != want {
						t.Fatalf("dst[%d*W+%d] = %v, want %v", p, j, got, want)
					}
				}
			}
		})
	}
}

func TestCopyBlock(t *testing.T) {
	needAVX2(t)
	cases := []struct{ k, ld, nsl, nr int }{{3, 70, 2, 32}, {5, 24, 1, 24}, {2, 100, 4, 16}}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("k%d/ld%d/nsl%d/nr%d", tc.k, tc.ld, tc.nsl, tc.nr), func(t *testing.T) {
			src := seq((tc.k-1)*tc.ld + tc.nsl*tc.nr)
			dst := make([]float32, tc.nsl*tc.k*tc.nr)
			CopyBlock(&dst[0], &src[0], tc.ld, tc.k, tc.nsl, tc.nr)
			for s := 0; s < tc.nsl; s++ {
				for p := 0; p < tc.k; p++ {
					for j := 0; j < tc.nr; j++ {
						want := src[p*tc.ld+s*tc.nr+j]
						if got := dst[s*tc.k*tc.nr+p*tc.nr+j]; got != want {
							t.Fatalf("dst[sliver %d, row %d, col %d] = %v, want %v", s, p, j, got, want)
						}
					}
				}
			}
		})
	}
}

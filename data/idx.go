package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The idx format (LeCun's MNIST files): a 4-byte magic 0x00 0x00 TYPE NDIMS,
// NDIMS big-endian uint32 sizes, then the payload in row-major order. Only
// TYPE 0x08 (unsigned byte) is used by the MNIST family.
const (
	idxTypeUbyte = 0x08
	// maxIdxBytes bounds the payload a header may announce (1 TiB), so that
	// the size arithmetic cannot overflow; real reads stop at the data present.
	maxIdxBytes = 1 << 40
	// readChunk is the most a read pre-allocates before data has arrived,
	// so a lying header cannot force a huge allocation.
	readChunk = 1 << 24
)

// readIdx decodes one idx stream of unsigned bytes with wantDims dimensions.
// name is used in error messages only. It never panics on bad input and
// allocates no more than the data actually present (plus one chunk).
func readIdx(r io.Reader, name string, wantDims int) (dims []int, payload []byte, err error) {
	var hdr [4]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: truncated: %d of 4 magic bytes (%v)", ErrFormat, name, n, err)
	}
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, nil, fmt.Errorf("%w: %s: bad magic %#08x: want 0x0000TTNN (not an idx file?)", ErrFormat, name, binary.BigEndian.Uint32(hdr[:]))
	}
	if hdr[2] != idxTypeUbyte {
		return nil, nil, fmt.Errorf("%w: %s: bad magic %#08x: element type %#02x, want %#02x (unsigned byte)", ErrFormat, name, binary.BigEndian.Uint32(hdr[:]), hdr[2], idxTypeUbyte)
	}
	if int(hdr[3]) != wantDims {
		return nil, nil, fmt.Errorf("%w: %s: bad magic %#08x: %d dimensions, want %d", ErrFormat, name, binary.BigEndian.Uint32(hdr[:]), hdr[3], wantDims)
	}
	raw := make([]byte, 4*wantDims)
	if n, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: truncated header: %d of %d dimension bytes (%v)", ErrFormat, name, n, len(raw), err)
	}
	dims = make([]int, wantDims)
	total := int64(1)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(raw[4*i:]))
		if dims[i] == 0 {
			return nil, nil, fmt.Errorf("%w: %s: dimension %d is 0", ErrFormat, name, i)
		}
		if int64(dims[i]) > maxIdxBytes/total {
			return nil, nil, fmt.Errorf("%w: %s: dimensions %v announce more than %d bytes", ErrFormat, name, dims[:i+1], int64(maxIdxBytes))
		}
		total *= int64(dims[i])
	}
	var buf bytes.Buffer
	buf.Grow(int(min(total, readChunk)))
	got, err := buf.ReadFrom(io.LimitReader(r, total))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, nil, fmt.Errorf("%w: %s: truncated (compressed stream ends early): header %s needs %d payload bytes, got %d", ErrFormat, name, dimString(dims), total, got)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: reading %s payload: %w", ErrFormat, name, dimString(dims), err)
	}
	if got < total {
		return nil, nil, fmt.Errorf("%w: %s: truncated: header %s needs %d payload bytes, file has %d", ErrFormat, name, dimString(dims), total, got)
	}
	// Read past the end: this detects trailing garbage and makes a gzip
	// reader verify its checksum.
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return nil, nil, fmt.Errorf("%w: %s: trailing bytes after the %s payload", ErrFormat, name, dimString(dims))
	}
	if err != io.EOF {
		return nil, nil, fmt.Errorf("%w: %s: after the payload: %w", ErrFormat, name, err)
	}
	return dims, buf.Bytes(), nil
}

func dimString(dims []int) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = fmt.Sprint(d)
	}
	return strings.Join(s, "x")
}

// readIdxFile reads an idx file, gzip-compressed or not (detected from the
// content, not the name).
func readIdxFile(path string, wantDims int) ([]int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: bad gzip header: %v", ErrFormat, path, err)
		}
		zr.Multistream(false)
		defer zr.Close()
		r = zr
	}
	dims, payload, err := readIdx(r, path, wantDims)
	if err != nil && errors.Is(err, gzip.ErrChecksum) {
		return nil, nil, fmt.Errorf("%w: %s: gzip checksum mismatch (corrupt download?)", ErrFormat, path)
	}
	return dims, payload, err
}

// decodeImages turns an idx3 image payload and an idx1 label payload into a
// Dataset, checking that they agree.
func decodeImages(name, imgPath, lblPath string, classes int, norm Norm) (*Dataset, error) {
	idims, pix, err := readIdxFile(imgPath, 3)
	if err != nil {
		return nil, err
	}
	ldims, lbl, err := readIdxFile(lblPath, 1)
	if err != nil {
		return nil, err
	}
	return buildImageDataset(name, imgPath, lblPath, idims, pix, ldims, lbl, classes, norm)
}

func buildImageDataset(name, imgPath, lblPath string, idims []int, pix []byte, ldims []int, lbl []byte, classes int, norm Norm) (*Dataset, error) {
	if idims[0] != ldims[0] {
		return nil, fmt.Errorf("%w: %s has %d images but %s has %d labels", ErrFormat, imgPath, idims[0], lblPath, ldims[0])
	}
	n, h, w := idims[0], idims[1], idims[2]
	if len(pix) != n*h*w || len(lbl) != n {
		return nil, fmt.Errorf("%w: %s: payload length %d, want %d", ErrFormat, imgPath, len(pix), n*h*w)
	}
	d := &Dataset{
		Name:       name,
		X:          make([]float32, len(pix)),
		Y:          make([]int32, n),
		Shape:      [3]int{1, h, w},
		Classes:    classes,
		Background: norm.Apply(0),
	}
	for i, b := range lbl {
		if int(b) >= classes {
			return nil, fmt.Errorf("%w: %s: label %d of sample %d is not in [0, %d)", ErrFormat, lblPath, b, i, classes)
		}
		d.Y[i] = int32(b)
	}
	t := norm.table()
	for i, p := range pix {
		d.X[i] = t[p]
	}
	return d, nil
}

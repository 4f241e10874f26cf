package nn

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gomnistDir is the data folder of the GoMNIST module, which ships MNIST.
const gomnistDir = "github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63/data"

// readIDX reads a gzip'd idx file (magic 0x801 labels or 0x803 images) and
// returns its dimensions and bytes. A test-only reader: package data owns
// the real one.
func readIDX(path string) (dims []int, raw []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, nil, err
	}
	var magic uint32
	if err := binary.Read(zr, binary.BigEndian, &magic); err != nil {
		return nil, nil, err
	}
	if magic>>8 != 0x08 || magic&0xff < 1 || magic&0xff > 3 {
		return nil, nil, fmt.Errorf("%s: bad idx magic %#x", path, magic)
	}
	n := 1
	for i := 0; i < int(magic&0xff); i++ {
		var d uint32
		if err := binary.Read(zr, binary.BigEndian, &d); err != nil {
			return nil, nil, err
		}
		dims = append(dims, int(d))
		n *= int(d)
	}
	raw = make([]byte, n)
	_, err = io.ReadFull(zr, raw)
	return dims, raw, err
}

// loadMNIST reads one split ("train" or "t10k"), normalised with mean
// 0.1307 and std 0.3081.
func loadMNIST(t *testing.T, dir, split string) ([]float32, []int32) {
	t.Helper()
	dims, px, err := readIDX(filepath.Join(dir, split+"-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	ldims, lab, err := readIDX(filepath.Join(dir, split+"-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dims) != 3 || dims[1]*dims[2] != 784 || len(ldims) != 1 || ldims[0] != dims[0] {
		t.Fatalf("%s: got image dims %v and label dims %v, want [N 28 28] and [N]", split, dims, ldims)
	}
	const mean, std = 0.1307, 0.3081
	x := make([]float32, len(px))
	for i, p := range px {
		x[i] = (float32(p)/255 - mean) / std
	}
	y := make([]int32, len(lab))
	for i, l := range lab {
		y[i] = int32(l)
	}
	return x, y
}

// TestMLPMNIST97 trains the paper's 784-400-400-400-10 MLP (dropout
// 0.2/0.5/0.5) centrally on MNIST and checks it reaches 97% test accuracy.
func TestMLPMNIST97(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on full MNIST")
	}
	const (
		epochs  = 3
		batch   = 64
		wantAcc = 0.97
	)
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("go env GOMODCACHE: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), gomnistDir)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("MNIST not found: %v", err)
	}
	start := time.Now()
	xtr, ytr := loadMNIST(t, dir, "train")
	xte, yte := loadMNIST(t, dir, "t10k")

	m, err := Build(paperMLP)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2024, 1))
	params := make([]float32, m.NumParams())
	m.Init(params, r)
	grad := make([]float32, m.NumParams())
	vel := make([]float32, m.NumParams())
	opt := SGD{LR: 0.01, Momentum: 0.9}
	ws := m.NewWorkspace(batch)
	xb := make([]float32, batch*784)
	yb := make([]int32, batch)
	order := r.Perm(len(ytr))
	for e := 0; e < epochs; e++ {
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var loss float64
		steps := 0
		for lo := 0; lo+batch <= len(order); lo += batch {
			for i, k := range order[lo : lo+batch] {
				copy(xb[i*784:(i+1)*784], xtr[k*784:(k+1)*784])
				yb[i] = ytr[k]
			}
			loss += float64(ws.LossGrad(params, grad, xb, yb, batch, 0, r))
			opt.Step(params, grad, vel)
			steps++
		}
		t.Logf("epoch %d: mean train loss %.4f", e, loss/float64(steps))
	}

	const evalBatch = 500
	ev := m.NewWorkspace(evalBatch)
	pred := make([]int32, evalBatch)
	correct := 0
	for lo := 0; lo < len(yte); lo += evalBatch {
		n := min(evalBatch, len(yte)-lo)
		ev.Predict(params, xte[lo*784:(lo+n)*784], n, 0, pred)
		for i := 0; i < n; i++ {
			if pred[i] == yte[lo+i] {
				correct++
			}
		}
	}
	acc := float64(correct) / float64(len(yte))
	t.Logf("backend %s: test accuracy %.2f%% after %d epochs in %v", ws.Backend().Name(), 100*acc, epochs, time.Since(start).Round(time.Millisecond))
	if acc < wantAcc {
		t.Errorf("test accuracy: got %.4f, want >= %.2f", acc, wantAcc)
	}
}

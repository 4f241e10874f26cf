package nn

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fotsim/fotsim/data"
)

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
	start := time.Now()
	train, test, err := data.LoadMNIST("", data.Norm{Mean: data.MNISTMean, Std: data.MNISTStd})
	if errors.Is(err, data.ErrNoMNIST) {
		t.Skipf("MNIST not found: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	xtr, ytr, xte, yte := train.X, train.Y, test.X, test.Y

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

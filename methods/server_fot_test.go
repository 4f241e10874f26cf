package methods_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// Tolerances.
const (
	srvOrthoTol    = 1e-5 // ||(W_after - W_before) U||_F / ||D||_F
	srvProjTol     = 1e-5 // ||dW - (D - D U U^T)||_F / ||D||_F
	srvPlainTol    = 1e-6 // max |dW - D| of unprojected parameters
	srvBasisTol    = 1e-5 // orthonormality and span of the basis
	srvFractionTol = 1e-5 // projected fraction vs its float64 value
	srvSketchRank  = 3    // rank of the fake clients' summed sketches
	srvFOTEpsilon  = 0.9
)

// srvFakeSketch is client c's sketch of projected layer i in round: Y = A_i
// G, with A_i (dIn x srvSketchRank) the same for every client, so the sum
// over clients has rank srvSketchRank.
func srvFakeSketch(i, dIn, m int, c, round int32) []float32 {
	ar := rng.New(11, "fake-A", i)
	a := make([]float64, dIn*srvSketchRank)
	for j := range a {
		a[j] = ar.NormFloat64()
	}
	gr := rng.New(11, "fake-G", i, int(c), int(round))
	y := make([]float32, dIn*m)
	g := make([]float64, srvSketchRank*m)
	for j := range g {
		g[j] = gr.NormFloat64()
	}
	for r := 0; r < dIn; r++ {
		for col := 0; col < m; col++ {
			var s float64
			for k := 0; k < srvSketchRank; k++ {
				s += a[r*srvSketchRank+k] * g[k*m+col]
			}
			y[r*m+col] = float32(s)
		}
	}
	return y
}

// srvWithSketches adds a sketch and a ratio for every projected layer.
func srvWithSketches(u *transport.Message, layers []nn.ParamView, over int, ratio float64) *transport.Message {
	for i, l := range layers {
		m := aggregator.SketchCols(l.Cols, float64(over))
		u.Tensors = append(u.Tensors, transport.Tensor{Name: protocol.SketchTensor(i), Rows: l.Cols, Cols: m, Data: srvFakeSketch(i, l.Cols, m, u.Client, u.Round)})
		u.Scalars = append(u.Scalars, transport.Scalar{Name: protocol.RatioScalar(i), Value: ratio})
	}
	return u
}

// srvMeanDelta is the uniform mean of the honest deltas of the selected
// clients of broadcast m, in float64.
func srvMeanDelta(m *transport.Message) []float64 {
	g := servertest.ParamsOf(m)
	out := make([]float64, len(g))
	for _, c := range m.Clients {
		for i, v := range servertest.HonestDelta(c, m.Round, g) {
			out[i] += float64(v) / float64(len(m.Clients))
		}
	}
	return out
}

func TestFOTThroughServer(t *testing.T) {
	for _, heads := range []int{1, 2} {
		t.Run(map[int]string{1: "shared-head", 2: "per-task-heads"}[heads], func(t *testing.T) {
			srvTestFOT(t, heads)
		})
	}
}

func srvTestFOT(t *testing.T, heads int) {
	const T, R, over = 2, 2, 1
	m := servertest.Model(t, heads)
	layers := protocol.Projected(m)
	wantLayers := 2
	if heads > 1 {
		wantLayers = 1 // per-task heads are not projected
	}
	if len(layers) != wantLayers {
		t.Fatalf("Projected: got %d layers, want %d", len(layers), wantLayers)
	}
	bus := transporttest.NewBus()
	wantRejected := 0
	f := servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
		if rm.Flags&protocol.FlagSketch == 0 {
			return servertest.HonestRespond(rm)
		}
		ratio := 1.0
		if rm.Task > 0 {
			ratio = 0.5
		}
		c0 := rm.Clients[0]
		bad := func(edit func(u *transport.Message)) *transport.Message {
			u := srvWithSketches(servertest.HonestUpdate(rm, c0), layers, over, ratio)
			for i := range u.Tensors[0].Data {
				u.Tensors[0].Data[i] = 1000
			}
			edit(u)
			return u
		}
		out := []*transport.Message{
			bad(func(u *transport.Message) { u.Tensors = u.Tensors[:1]; u.Scalars = u.Scalars[:1] }), // no sketches
			bad(func(u *transport.Message) { // wrong sketch shape
				s := &u.Tensors[len(u.Tensors)-1]
				s.Cols--
				s.Data = s.Data[:s.Rows*s.Cols]
			}),
			bad(func(u *transport.Message) { u.Scalars[len(u.Scalars)-1].Value = 1.5 }),    // ratio > 1
			bad(func(u *transport.Message) { u.Scalars[len(u.Scalars)-1].Value = -0.1 }),   // ratio < 0
			bad(func(u *transport.Message) { u.Scalars = u.Scalars[:len(u.Scalars)-1] }),   // no ratio
			bad(func(u *transport.Message) { u.Tensors = slices.Delete(u.Tensors, 1, 2) }), // first sketch missing
		}
		wantRejected += len(out)
		for _, c := range rm.Clients {
			out = append(out, srvWithSketches(servertest.HonestUpdate(rm, c), layers, over, ratio))
		}
		return out
	})
	cfg := servertest.Config(T, R)
	// The old FOTConfig{Epsilon: 0.9, Criterion: "fot", Oversample: 1},
	// built through the registry as the simulator does.
	method, rule := srvRule(t, "fot", map[string]any{"epsilon": srvFOTEpsilon, "eps_inc": 0.0, "criterion": "fot", "oversample": over},
		methods.Env{Model: m, Seed: servertest.Seed, Weighting: cfg.Weighting, ServerLR: cfg.ServerLR})
	cfg.Rule, cfg.LoRA = rule, method.Info().LoRA
	_, params, rec := servertest.Run(t, cfg, m, bus, 5)
	if rec.RejectedUpdates != wantRejected {
		t.Errorf("RejectedUpdates: got %d, want %d (bad sketch-round updates)", rec.RejectedUpdates, wantRejected)
	}
	bc := f.Broadcasts()
	if len(bc) != T*R {
		t.Fatalf("got %d broadcasts, want %d", len(bc), T*R)
	}
	after := func(r int) []float32 { return servertest.ParamsAfter(bc, params, r) }
	for r, b := range bc {
		last := r%R == R-1
		if got := b.Flags&protocol.FlagSketch != 0; got != last {
			t.Errorf("round %d: FlagSketch %v, want %v", r, got, last)
		}
		if b.Task == 0 || !last {
			if n := len(b.Tensors); n != 1 {
				t.Errorf("round %d: %d tensors, want only params (no basis yet or not a sketch round)", r, n)
			}
		}
	}

	// The bases after task 0 are in the last broadcast of task 1; each must
	// be orthonormal and span the top singular directions of the summed
	// sketches of task 0's last round (rank srvSketchRank).
	bases := make([]*mat.Dense, len(layers))
	sketchRound := bc[R-1]
	for i, l := range layers {
		bt := bc[T*R-1].Tensor(protocol.BasisTensor(i))
		if bt == nil {
			t.Fatalf("layer %s: no basis in the last round of task 1", l.Name)
		}
		k := bt.Cols
		if bt.Rows != l.Cols || k < 1 || k > srvSketchRank {
			t.Fatalf("layer %s: basis is %dx%d, want %d rows and 1..%d columns", l.Name, bt.Rows, k, l.Cols, srvSketchRank)
		}
		if got := rec.TasksDetail[0].BasisDims[l.Name]; got != k {
			t.Errorf("layer %s: basis_dims after task 0 = %d, broadcast basis has %d", l.Name, got, k)
		}
		b := mat.NewDense(l.Cols, k, nil)
		for r := 0; r < l.Cols; r++ {
			for c := 0; c < k; c++ {
				b.Set(r, c, float64(bt.Data[r*k+c]))
			}
		}
		bases[i] = b
		var btb mat.Dense
		btb.Mul(b.T(), b)
		for r := 0; r < k; r++ {
			for c := 0; c < k; c++ {
				want := 0.0
				if r == c {
					want = 1
				}
				if math.Abs(btb.At(r, c)-want) > srvBasisTol {
					t.Errorf("layer %s: (U^T U)[%d][%d] = %v, want %v", l.Name, r, c, btb.At(r, c), want)
				}
			}
		}
		// Reference: SVD of the sum of the sketches, k by the energy rule.
		mc := aggregator.SketchCols(l.Cols, over)
		ysum := mat.NewDense(l.Cols, mc, nil)
		for _, c := range sketchRound.Clients {
			y := srvFakeSketch(i, l.Cols, mc, c, sketchRound.Round)
			for j, v := range y {
				ysum.Set(j/mc, j%mc, ysum.At(j/mc, j%mc)+float64(float32(v)))
			}
		}
		var svd mat.SVD
		if !svd.Factorize(ysum, mat.SVDThinU) {
			t.Fatal("svd failed")
		}
		sv := svd.Values(nil)
		var total, cum float64
		for _, v := range sv {
			total += v * v
		}
		wantK := 0
		for j, v := range sv {
			cum += v * v
			if cum/total > srvFOTEpsilon {
				wantK = j + 1
				break
			}
		}
		if k != wantK {
			t.Errorf("layer %s: basis has %d vectors, want %d (energy > %v)", l.Name, k, wantK, srvFOTEpsilon)
		}
		var u mat.Dense
		svd.UTo(&u)
		top := u.Slice(0, l.Cols, 0, min(k, wantK))
		var proj, res mat.Dense
		proj.Mul(b.T(), top)
		res.Mul(b, &proj)
		res.Sub(&res, top)
		if n := mat.Norm(&res, 2); n > srvBasisTol {
			t.Errorf("layer %s: top singular vectors leave the basis span by %v", l.Name, n)
		}
	}

	// Every round's applied update: plain FedAvg in task 0 and for every
	// unprojected parameter; D - D U U^T for projected layers in task 1.
	projected := map[int]int{} // weight offset -> layer index
	for i, l := range layers {
		projected[l.Offset] = i
	}
	fraction := make([]float64, len(layers))
	for r, b := range bc {
		before, aft := servertest.ParamsOf(b), after(r)
		d := srvMeanDelta(b)
		isProj := make([]bool, len(d))
		if b.Task > 0 {
			for _, w := range m.Weights() {
				i, ok := projected[w.Offset]
				if !ok {
					continue
				}
				rows, cols := w.Rows, w.Cols
				dl := mat.NewDense(rows, cols, slices.Clone(d[w.Offset:w.Offset+rows*cols]))
				dw := mat.NewDense(rows, cols, nil)
				for j := 0; j < rows*cols; j++ {
					dw.Set(j/cols, j%cols, float64(aft[w.Offset+j])-float64(before[w.Offset+j]))
					isProj[w.Offset+j] = true
				}
				dn := mat.Norm(dl, 2)
				var du, want mat.Dense
				du.Mul(dw, bases[i])
				if rel := mat.Norm(&du, 2) / dn; rel > srvOrthoTol {
					t.Errorf("round %d layer %s: ||dW U|| / ||D|| = %v, want <= %v", r, w.Name, rel, srvOrthoTol)
				}
				var dU mat.Dense
				dU.Mul(dl, bases[i])
				fraction[i] += mat.Norm(&dU, 2) / dn / float64(R)
				want.Mul(&dU, bases[i].T())
				want.Sub(dl, &want)
				want.Sub(dw, &want)
				if rel := mat.Norm(&want, 2) / dn; rel > srvProjTol {
					t.Errorf("round %d layer %s: ||dW - (D - D U U^T)|| / ||D|| = %v, want <= %v", r, w.Name, rel, srvProjTol)
				}
				if mat.Norm(&dU, 2)/dn < 0.01 {
					t.Errorf("round %d layer %s: D barely touches the basis; the test shows nothing", r, w.Name)
				}
			}
		}
		var worst float64
		for j := range d {
			if !isProj[j] {
				worst = max(worst, math.Abs(float64(aft[j])-float64(before[j])-d[j]))
			}
		}
		if worst > srvPlainTol {
			t.Errorf("round %d: unprojected parameters: max |dW - D| = %v, want <= %v", r, worst, srvPlainTol)
		}
	}

	if len(rec.TasksDetail) != T {
		t.Fatalf("got %d task details, want %d", len(rec.TasksDetail), T)
	}
	t.Logf("basis dims %v %v, projected fraction %v", rec.TasksDetail[0].BasisDims, rec.TasksDetail[1].BasisDims, rec.TasksDetail[1].ProjectedFraction)
	for task, det := range rec.TasksDetail {
		if len(det.BasisDims) != len(layers) || len(det.ProjectedFraction) != len(layers) {
			t.Errorf("task %d: basis_dims %v, projected_fraction %v, want one entry per projected layer", task, det.BasisDims, det.ProjectedFraction)
		}
		for i, l := range layers {
			k, ok := det.BasisDims[l.Name]
			if !ok || k < 1 || k > l.Cols {
				t.Errorf("task %d layer %s: basis_dims %d (present %v), want in [1, %d]", task, l.Name, k, ok, l.Cols)
			}
			if task > 0 && k < rec.TasksDetail[task-1].BasisDims[l.Name] {
				t.Errorf("task %d layer %s: basis shrank from %d to %d", task, l.Name, rec.TasksDetail[task-1].BasisDims[l.Name], k)
			}
			pf, ok := det.ProjectedFraction[l.Name]
			want := 0.0
			if task == 1 {
				want = fraction[i]
			}
			if !ok || math.Abs(pf-want) > srvFractionTol {
				t.Errorf("task %d layer %s: projected_fraction %v (present %v), want %v", task, l.Name, pf, ok, want)
			}
		}
	}
}

// FOT settings that server.New refused (ErrConfig) when the server held
// FOT's configuration are refused by the fot method now: Check names the
// bad option and Server returns an error wrapping ErrOptions instead of a
// rule. These were server's TestNewValidates "fot-oversample0" and
// TestValidateWrapsErrConfig "fot-epsilon0" and "fot-criterion".
func TestFOTServerRefusesInvalidOptions(t *testing.T) {
	fot, ok := methods.Lookup("fot")
	if !ok {
		t.Fatal("fot is not registered")
	}
	m := servertest.Model(t, 1)
	env := methods.Env{Model: m, Seed: servertest.Seed, ServerLR: 1, FOT: methods.DefaultFOT()}
	cases := []struct {
		name    string
		written map[string]any
		key     string // "" for valid options
	}{
		{"valid", map[string]any{"epsilon": 0.9, "oversample": 1}, ""},
		{"fot-oversample0", map[string]any{"epsilon": 0.9, "oversample": 0}, "oversample"},
		{"fot-epsilon0", map[string]any{"epsilon": 0.0, "oversample": 1}, "epsilon"},
		{"fot-criterion", map[string]any{"epsilon": 0.9, "oversample": 1, "criterion": "svd"}, "criterion"},
	}
	for _, tc := range cases {
		opts, err := fot.Resolve(nil, tc.written)
		if err != nil {
			t.Fatalf("%s: Resolve: %v", tc.name, err)
		}
		probs := fot.Check(opts)
		rule, err := fot.Server(opts, env)
		if tc.key == "" {
			if len(probs) != 0 || err != nil || rule == nil {
				t.Errorf("%s: Check %v, Server (%v, %v), want no problem and a rule", tc.name, probs, rule, err)
			}
			continue
		}
		if !slices.ContainsFunc(probs, func(p methods.Problem) bool { return p.Key == tc.key }) {
			t.Errorf("%s: Check = %v, want a problem with %s", tc.name, probs, tc.key)
		}
		if !errors.Is(err, methods.ErrOptions) {
			t.Errorf("%s: Server error %v, want one wrapping ErrOptions", tc.name, err)
		}
	}
}

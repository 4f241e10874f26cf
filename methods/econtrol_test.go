package methods_test

import (
	"bytes"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// ecSides builds EControl's client and server sides with the written
// options, on a model of n parameters (n = 16*h + h + 3*h + 3 for h hidden
// units) and 4 clients.
func ecSides(t *testing.T, written map[string]any, hidden int) (client.Behaviour, server.Rule, int) {
	t.Helper()
	model, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{hidden}, Dropout: []float64{0}, Classes: 3, Heads: 1})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := methods.Lookup("econtrol")
	opts, err := def.Resolve(nil, written)
	if err != nil {
		t.Fatal(err)
	}
	env := methods.Env{Model: model, Seed: 1, BatchSize: 4, Weighting: aggregator.Uniform, ServerLR: 1, Clients: 4}
	c, err := def.Client(opts, env)
	if err != nil {
		t.Fatal(err)
	}
	r, err := def.Server(opts, env)
	if err != nil {
		t.Fatal(err)
	}
	return c, r, model.NumParams()
}

// ecFinish runs the client side on client c's dense delta d in round r and
// returns the update it would send.
func ecFinish(t *testing.T, b client.Behaviour, w *client.Work, c, r int, d []float32) *transport.Message {
	t.Helper()
	w.Client, w.Round = c, r
	w.Msg = &transport.Message{Kind: transport.KindRound, Round: int32(r)}
	w.Update = &transport.Message{Kind: transport.KindUpdate, Client: int32(c), Round: int32(r), N: 10,
		Tensors: []transport.Tensor{{Name: protocol.TensorDelta, Rows: 1, Cols: len(d), Data: append([]float32(nil), d...)}}}
	if err := b.Finish(w); err != nil {
		t.Fatal(err)
	}
	if w.Update.Tensor(protocol.TensorDelta) != nil {
		t.Fatal("the update still carries the dense delta")
	}
	return w.Update
}

func ecDelta(seed, n int) []float32 {
	r := rng.New(uint64(seed), "ec-delta")
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return d
}

// TestEControlTopK checks the top-k compressor and the error control
// against a float64 reference: round 1 sends the k entries of largest
// |d| (e = h = 0), and then e + h = d (what was not sent is in e); round 2
// sends top-k of eta e + d2 - h; a round trained again (resend) gives the
// same update and state as training it once; the server decodes exactly
// the entries sent.
func TestEControlTopK(t *testing.T) {
	b, rule, n := ecSides(t, map[string]any{"ratio": 0.25, "eta": 0.5}, 8)
	dec := rule.(server.Decoder)
	k := int(math.Round(0.25 * float64(n)))
	var w client.Work
	d1 := ecDelta(1, n)
	u := ecFinish(t, b, &w, 2, 0, d1)
	idx := u.Tensor("ec_index").Data
	if len(idx) != k || len(u.Tensor("ec_value").Data) != k {
		t.Fatalf("%d indices, %d values, want k = %d", len(idx), len(u.Tensor("ec_value").Data), k)
	}
	// The reference: the k largest |d1| (ties: lower index), ascending.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, c int) bool { return math.Abs(float64(d1[order[a]])) > math.Abs(float64(d1[order[c]])) })
	want := append([]int(nil), order[:k]...)
	sort.Ints(want)
	for i, f := range idx {
		if int(f) != want[i] {
			t.Fatalf("index %d = %v, want %d", i, f, want[i])
		}
	}
	got, err := dec.DecodeUpdate(u, n)
	if err != nil {
		t.Fatal(err)
	}
	sent := make([]float64, n)
	for _, j := range want {
		sent[j] = float64(d1[j])
	}
	for j := range got {
		if float64(got[j]) != sent[j] {
			t.Fatalf("decoded entry %d = %v, want %v", j, got[j], sent[j])
		}
	}
	// Round 2: v = eta e + d2 - h with e = d1 - sent, h = sent.
	d2 := ecDelta(2, n)
	v := make([]float64, n)
	for j := range v {
		v[j] = 0.5*(float64(d1[j])-sent[j]) + float64(d2[j]) - sent[j]
	}
	u2 := ecFinish(t, b, &w, 2, 1, d2)
	var st bytes.Buffer
	if err := b.(protocol.Stateful).SaveState(&st); err != nil {
		t.Fatal(err)
	}
	u2again := ecFinish(t, b, &w, 2, 1, d2) // the round resent and trained again
	if !equalTensors(u2.Tensors, u2again.Tensors) {
		t.Error("training a round again gives another update")
	}
	var st2 bytes.Buffer
	_ = b.(protocol.Stateful).SaveState(&st2)
	if !bytes.Equal(st.Bytes(), st2.Bytes()) {
		t.Error("training a round again changes the client's state")
	}
	got2, err := dec.DecodeUpdate(u2, n)
	if err != nil {
		t.Fatal(err)
	}
	nz := 0
	var minKept, maxDropped float64 = math.Inf(1), 0
	for j, g := range got2 {
		if g != 0 {
			nz++
			if math.Abs(float64(g)-v[j]) > 1e-5 {
				t.Errorf("entry %d sent %v, want v = %v", j, g, v[j])
			}
			minKept = min(minKept, math.Abs(v[j]))
		} else {
			maxDropped = max(maxDropped, math.Abs(v[j]))
		}
	}
	if nz != k || minKept < maxDropped-1e-6 {
		t.Errorf("round 2 sent %d entries (want %d), smallest kept |v| %v < largest dropped %v", nz, k, minKept, maxDropped)
	}
}

// equalTensors compares names, shapes and values bit for bit.
func equalTensors(a, b []transport.Tensor) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || len(a[i].Data) != len(b[i].Data) {
			return false
		}
		for j := range a[i].Data {
			if math.Float32bits(a[i].Data[j]) != math.Float32bits(b[i].Data[j]) {
				return false
			}
		}
	}
	return true
}

// TestEControlQuant checks the quantiser: every decoded entry is within
// half a step (scale / s / 2) of what the client meant to send, the
// server decodes exactly what the client kept (its error is computed
// from it), the codes take bits per entry, and bits = 8 is finer than 3.
func TestEControlQuant(t *testing.T) {
	for _, bits := range []int{3, 8} {
		b, rule, n := ecSides(t, map[string]any{"compressor": "quant", "bits": bits, "eta": 0}, 40) // n > 2 blocks
		var w client.Work
		d := ecDelta(3, n)
		u := ecFinish(t, b, &w, 1, 0, d)
		if got, want := len(u.Tensor("ec_codes").Data), (n*bits+23)/24; got != want {
			t.Errorf("bits %d: %d code words, want %d", bits, got, want)
		}
		if got, want := len(u.Tensor("ec_scale").Data), (n+255)/256; got != want {
			t.Errorf("bits %d: %d scales, want %d", bits, got, want)
		}
		got, err := rule.(server.Decoder).DecodeUpdate(u, n)
		if err != nil {
			t.Fatal(err)
		}
		s := float64(int(1)<<(bits-1) - 1)
		scales := u.Tensor("ec_scale").Data
		var worst float64
		for j := range d {
			step := float64(scales[j/256]) / s
			e := math.Abs(float64(got[j]) - float64(d[j]))
			if e > step/2+1e-6 {
				t.Fatalf("bits %d: entry %d decoded %v, sent %v: error %v above half a step %v", bits, j, got[j], d[j], e, step/2)
			}
			worst = max(worst, e)
		}
		t.Logf("bits %d: worst error %.4g", bits, worst)
		// Round 2 with d = 0 and eta = 0 sends C(-h) = C(-got): the
		// client's h is exactly the decoded vector.
		u2 := ecFinish(t, b, &w, 1, 1, make([]float32, n))
		got2, err := rule.(server.Decoder).DecodeUpdate(u2, n)
		if err != nil {
			t.Fatal(err)
		}
		for j := range got2 {
			if math.Abs(float64(got2[j]+got[j])) > 1e-6*math.Abs(float64(got[j]))+1e-7 {
				t.Fatalf("bits %d: round 2 entry %d = %v, want -h = %v", bits, j, got2[j], -got[j])
			}
		}
	}
}

// TestEControlServerEstimator checks the server's rule against a float64
// reference: the applied aggregate is hbar + mean Delta_i, and hbar gains
// sum_i Delta_i / N (N = 4 clients) after each round.
func TestEControlServerEstimator(t *testing.T) {
	_, rule, n := ecSides(t, nil, 8)
	hbar := make([]float64, n)
	for round := range 3 {
		ups := []aggregator.Update{{Client: 0, N: 5, Delta: ecDelta(10+round, n)}, {Client: 3, N: 7, Delta: ecDelta(20+round, n)}}
		agg := make([]float32, n)
		aggregator.Mean(agg, ups, aggregator.Uniform)
		mean := append([]float32(nil), agg...)
		rule.BeforeApply(agg, 1)
		for j := range agg {
			if want := float64(mean[j]) + hbar[j]; math.Abs(float64(agg[j])-want) > 1e-6 {
				t.Fatalf("round %d: aggregate %d = %v, want %v", round, j, agg[j], want)
			}
		}
		if err := rule.AfterApply(&server.Applied{Round: round, Ups: ups, Agg: agg}); err != nil {
			t.Fatal(err)
		}
		for j := range hbar {
			hbar[j] += (float64(ups[0].Delta[j]) + float64(ups[1].Delta[j])) / 4
		}
	}
}

// TestEControlRejectsMalformed feeds the server's decoder updates that
// break the encoding: each is an error naming the problem.
func TestEControlRejectsMalformed(t *testing.T) {
	b, rule, n := ecSides(t, map[string]any{"ratio": 0.25}, 8)
	var w client.Work
	good := ecFinish(t, b, &w, 0, 0, ecDelta(4, n))
	dec := rule.(server.Decoder)
	mutate := func(f func(m *transport.Message)) *transport.Message {
		m := &transport.Message{Tensors: make([]transport.Tensor, len(good.Tensors))}
		for i, tn := range good.Tensors {
			tn.Data = append([]float32(nil), tn.Data...)
			m.Tensors[i] = tn
		}
		f(m)
		return m
	}
	for _, tc := range []struct {
		name, want string
		m          *transport.Message
	}{
		{"no values", "tensors", mutate(func(m *transport.Message) { m.Tensors = m.Tensors[:1] })},
		{"more entries than k", "tensors", mutate(func(m *transport.Message) {
			m.Tensors[0].Data = append(m.Tensors[0].Data, float32(n-1))
			m.Tensors[1].Data = append(m.Tensors[1].Data, 1)
		})},
		{"fractional index", "index", mutate(func(m *transport.Message) { m.Tensors[0].Data[0] += 0.5 })},
		{"repeated index", "index", mutate(func(m *transport.Message) { m.Tensors[0].Data[1] = m.Tensors[0].Data[0] })},
		{"index out of range", "index", mutate(func(m *transport.Message) { m.Tensors[0].Data[len(m.Tensors[0].Data)-1] = float32(n) })},
	} {
		if _, err := dec.DecodeUpdate(tc.m, n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	if _, err := dec.DecodeUpdate(good, n); err != nil {
		t.Errorf("the good update: %v", err)
	}
	qb, qrule, qn := ecSides(t, map[string]any{"compressor": "quant", "bits": 4}, 8)
	q := ecFinish(t, qb, &w, 0, 0, ecDelta(5, qn))
	for _, tc := range []struct {
		name string
		f    func(m *transport.Message)
	}{
		{"negative scale", func(m *transport.Message) { m.Tensor("ec_scale").Data[0] = -1 }},
		{"fractional code word", func(m *transport.Message) { m.Tensor("ec_codes").Data[0] = 0.5 }},
		{"code word of 25 bits", func(m *transport.Message) { m.Tensor("ec_codes").Data[0] = 1 << 24 }},
		{"short codes", func(m *transport.Message) { c := m.Tensor("ec_codes"); c.Data = c.Data[:len(c.Data)-1] }},
	} {
		m := &transport.Message{}
		for _, tn := range q.Tensors {
			tn.Data = append([]float32(nil), tn.Data...)
			m.Tensors = append(m.Tensors, tn)
		}
		tc.f(m)
		if _, err := qrule.(server.Decoder).DecodeUpdate(m, qn); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

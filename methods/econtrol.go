package methods

import (
	"encoding/gob"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// EControl (docs/ALGORITHMS.md §10): compressed uploads with error control.
// Client i keeps an error e_i and an estimator h_i of its update; in a
// round it sends only Delta_i = C(eta e_i + d_i - h_i) (C: top-k or
// quantisation), then e_i += d_i - h_i - Delta_i and h_i += Delta_i. The
// server keeps hbar, the mean of every client's h_i, applies
// hbar + mean_i Delta_i and adds sum_i Delta_i / N to hbar.
func init() {
	Register(Def[EControlOptions]{
		Spec: Spec{
			Name:     "econtrol",
			Summary:  "EControl: FedAvg with compressed uploads (top-k or quantised) and error control (error e_i and estimator h_i per client, feedback strength eta)",
			NoSecAgg: "its clients send their deltas compressed in their own encoding, which the server decodes one by one (masks would have to be added to the compressed values)",
		},
		Defaults: EControlOptions{Compressor: "topk", Ratio: 0.1, Bits: 4, Eta: 0.5},
		Validate: EControlOptions.Validate,
		NewClient: func(o EControlOptions, e Env) (client.Behaviour, error) {
			n, err := econtrolSize(o, e)
			if err != nil {
				return nil, err
			}
			return &ecClient{o: o, n: n, state: map[int]*ecTerms{}}, nil
		},
		NewServer: func(o EControlOptions, e Env) (server.Rule, error) {
			n, err := econtrolSize(o, e)
			if err != nil {
				return nil, err
			}
			if e.Clients < 1 {
				return nil, fmt.Errorf("%w: econtrol needs the number of clients", ErrOptions)
			}
			return &ecRule{o: o, n: n, clients: e.Clients, hbar: make([]float64, n), sum: make([]float64, n)}, nil
		},
	})
}

// EControlOptions are EControl's options.
type EControlOptions struct {
	Compressor string  `yaml:"compressor" short:"c" allowed:"topk,quant" doc:"upload compressor: topk (the largest ratio share of entries, with their indices) or quant (bits-bit codes, a scale per 256 values)"`
	Ratio      float64 `yaml:"ratio" short:"k" doc:"topk: share of the entries sent, in (0, 1)"`
	Bits       int     `yaml:"bits" short:"b" doc:"quant: bits per entry, 2 to 8"`
	Eta        float64 `yaml:"eta" doc:"strength of the error feedback, in [0, 1]"`
}

// Validate returns the invalid options.
func (o EControlOptions) Validate() []Problem {
	var out []Problem
	if !(o.Ratio > 0 && o.Ratio < 1) {
		out = append(out, Problem{"ratio", fmt.Sprintf("must be in (0, 1), got %g", o.Ratio)})
	}
	if o.Bits < 2 || o.Bits > 8 {
		out = append(out, Problem{"bits", fmt.Sprintf("must be 2 to 8, got %d", o.Bits)})
	}
	if !(o.Eta >= 0 && o.Eta <= 1) {
		out = append(out, Problem{"eta", fmt.Sprintf("must be in [0, 1], got %g", o.Eta)})
	}
	return out
}

// ecMaxIndex bounds the entries a top-k update can address: indices travel
// as float32 values, exact up to 2^24.
const ecMaxIndex = 1 << 24

// ecBlock is the number of values that share one scale in quant.
const ecBlock = 256

// ecWordBits is the payload of one quant word: codes are packed 24 bits to
// a float32 (an integer below 2^24, exact and finite).
const ecWordBits = 24

// Names of the tensors of a compressed update.
const (
	ecIndex = "ec_index" // topk: the entries' indices, ascending
	ecValue = "ec_value" // topk: their values
	ecScale = "ec_scale" // quant: the largest magnitude of each block of 256
	ecCodes = "ec_codes" // quant: bits-bit codes, 24 bits per value
)

// econtrolSize returns the number of values an update carries (every
// parameter) and checks that the compressor can address them.
func econtrolSize(o EControlOptions, e Env) (int, error) {
	if p := o.Validate(); len(p) > 0 {
		return 0, fmt.Errorf("%w: econtrol %s %s", ErrOptions, p[0].Key, p[0].Msg)
	}
	n := e.Model.NumParams()
	if o.Compressor == "topk" && n > ecMaxIndex {
		return 0, fmt.Errorf("%w: econtrol topk addresses at most %d parameters, the model has %d", ErrOptions, ecMaxIndex, n)
	}
	return n, nil
}

// topK returns k for n values: the ratio share, at least 1 and fewer than n.
func topK(ratio float64, n int) int {
	return min(max(int(math.Round(ratio*float64(n))), 1), n-1)
}

// quantLevels returns s, the largest code magnitude of bits-bit codes.
func quantLevels(bits int) int { return 1<<(bits-1) - 1 }

// dequant is the value of code q (in [-s, s]) of a block of scale sc: the
// client and the server compute it the same way, to the bit.
func dequant(sc float32, q, s int) float32 {
	return float32(float64(sc) * float64(q) / float64(s))
}

// ecTerms is one client's error and estimator, before and after the last
// round it trained (a round trained again, after a resend, starts again
// from before).
type ecTerms struct {
	round        int
	e0, h0, e, h []float32
}

// ecClient is EControl's client side.
type ecClient struct {
	BaseBehaviour
	o     EControlOptions
	n     int
	mu    sync.Mutex
	state map[int]*ecTerms
}

// ecWorker is a worker's buffers.
type ecWorker struct {
	v, comp      []float32
	mag          []float32
	index, value []float32
	scale, codes []float32
}

// terms returns client c's terms for round r: e0, h0 are their values
// before round r.
func (c *ecClient) terms(id, r int) *ecTerms {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.state[id]
	if t == nil {
		t = &ecTerms{round: r, e0: make([]float32, c.n), h0: make([]float32, c.n), e: make([]float32, c.n), h: make([]float32, c.n)}
		c.state[id] = t
		return t
	}
	if r != t.round {
		copy(t.e0, t.e)
		copy(t.h0, t.h)
		t.round = r
	}
	return t
}

// Finish replaces the dense delta of a normal round by its compressed
// form and updates the client's error and estimator.
func (c *ecClient) Finish(w *client.Work) error {
	if w.Msg.Flags&(protocol.FlagBase|protocol.FlagNoTrain) != 0 {
		return nil // pretraining rounds send the plain delta
	}
	u := w.Update
	if len(u.Tensors) == 0 || u.Tensors[0].Name != protocol.TensorDelta || len(u.Tensors[0].Data) != c.n {
		return fmt.Errorf("econtrol: the update has no %q tensor of %d values", protocol.TensorDelta, c.n)
	}
	d := u.Tensors[0].Data
	wk, ok := w.State.(*ecWorker)
	if !ok {
		wk = &ecWorker{v: make([]float32, c.n), comp: make([]float32, c.n)}
		w.State = wk
	}
	t := c.terms(w.Client, w.Round)
	eta := float32(c.o.Eta)
	for j := range wk.v {
		wk.v[j] = eta*t.e0[j] + d[j] - t.h0[j]
	}
	var enc []transport.Tensor
	if c.o.Compressor == "topk" {
		enc = c.topk(wk)
	} else {
		enc = c.quant(wk)
	}
	for j, dl := range wk.comp {
		t.e[j] = t.e0[j] + d[j] - t.h0[j] - dl
		t.h[j] = t.h0[j] + dl
	}
	u.Tensors = append(u.Tensors[:0], enc...)
	return nil
}

// topk keeps the k entries of wk.v of largest magnitude (ties: the lower
// index), writes the kept vector to wk.comp and returns the tensors.
func (c *ecClient) topk(wk *ecWorker) []transport.Tensor {
	k := topK(c.o.Ratio, c.n)
	wk.mag = append(wk.mag[:0], wk.v...)
	for j, x := range wk.mag {
		wk.mag[j] = float32(math.Abs(float64(x)))
	}
	thr := kthLargest(wk.mag, k) // reorders wk.mag
	above := 0
	for _, x := range wk.v {
		if float32(math.Abs(float64(x))) > thr {
			above++
		}
	}
	ties := k - above // entries equal to the threshold to keep, lowest index first
	wk.index, wk.value = wk.index[:0], wk.value[:0]
	clear(wk.comp)
	for j, x := range wk.v {
		a := float32(math.Abs(float64(x)))
		if a > thr || (a == thr && ties > 0) {
			if a == thr {
				ties--
			}
			wk.index = append(wk.index, float32(j))
			wk.value = append(wk.value, x)
			wk.comp[j] = x
		}
	}
	return []transport.Tensor{
		{Name: ecIndex, Rows: 1, Cols: len(wk.index), Data: wk.index},
		{Name: ecValue, Rows: 1, Cols: len(wk.value), Data: wk.value},
	}
}

// kthLargest returns the k-th largest value of a (1-based), reordering a
// (quickselect with a median-of-three pivot: deterministic).
func kthLargest(a []float32, k int) float32 {
	lo, hi, want := 0, len(a)-1, k-1 // want: index in descending order
	for lo < hi {
		mid := lo + (hi-lo)/2
		p := median3(a[lo], a[mid], a[hi])
		i, j := lo, hi
		for i <= j {
			for a[i] > p {
				i++
			}
			for a[j] < p {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case want <= j:
			hi = j
		case want >= i:
			lo = i
		default:
			return a[want]
		}
	}
	return a[want]
}

func median3(x, y, z float32) float32 {
	if x > y {
		x, y = y, x
	}
	if y > z {
		y = z
	}
	if x > y {
		return x
	}
	return y
}

// quant codes wk.v in blocks of ecBlock values with bits-bit codes
// round(v / scale * s) + s, writes the decoded vector to wk.comp and
// returns the tensors.
func (c *ecClient) quant(wk *ecWorker) []transport.Tensor {
	s := quantLevels(c.o.Bits)
	nb := (c.n + ecBlock - 1) / ecBlock
	wk.scale = append(wk.scale[:0], make([]float32, nb)...)
	words := (c.n*c.o.Bits + ecWordBits - 1) / ecWordBits
	wk.codes = append(wk.codes[:0], make([]float32, words)...)
	var acc uint64 // bits not yet written
	var nacc, w int
	for b := range nb {
		lo, hi := b*ecBlock, min((b+1)*ecBlock, c.n)
		var sc float32
		for _, x := range wk.v[lo:hi] {
			sc = max(sc, float32(math.Abs(float64(x))))
		}
		wk.scale[b] = sc
		for j := lo; j < hi; j++ {
			q := 0
			if sc > 0 {
				q = int(math.Round(float64(wk.v[j]) / float64(sc) * float64(s)))
				q = min(max(q, -s), s)
			}
			wk.comp[j] = dequant(sc, q, s)
			acc |= uint64(q+s) << nacc
			nacc += c.o.Bits
			for nacc >= ecWordBits {
				wk.codes[w] = float32(acc & (1<<ecWordBits - 1))
				w++
				acc >>= ecWordBits
				nacc -= ecWordBits
			}
		}
	}
	if nacc > 0 {
		wk.codes[w] = float32(acc)
	}
	return []transport.Tensor{
		{Name: ecScale, Rows: 1, Cols: nb, Data: wk.scale},
		{Name: ecCodes, Rows: 1, Cols: words, Data: wk.codes},
	}
}

// ecSaved is ecClient's state: every client's terms.
type ecSaved struct {
	Clients map[int]ecTermsSaved
}

// ecTermsSaved is one client's terms after its last round: a checkpoint
// is taken between rounds, when that round is aggregated and will not be
// trained again, so the terms before it are not needed.
type ecTermsSaved struct {
	Round int
	E, H  []float32
}

func (c *ecClient) SaveState(w io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ecSaved{Clients: map[int]ecTermsSaved{}}
	for id, t := range c.state {
		s.Clients[id] = ecTermsSaved{Round: t.round, E: t.e, H: t.h}
	}
	return gob.NewEncoder(w).Encode(s)
}

func (c *ecClient) LoadState(r io.Reader) error {
	var s ecSaved
	if err := gob.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("econtrol state: %w", err)
	}
	state := map[int]*ecTerms{}
	for id, t := range s.Clients {
		if len(t.E) != c.n || len(t.H) != c.n {
			return fmt.Errorf("econtrol state: client %d has terms of another size than %d", id, c.n)
		}
		state[id] = &ecTerms{round: t.Round, e0: slices.Clone(t.E), h0: slices.Clone(t.H), e: t.E, h: t.H}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = state
	return nil
}

// ecRule is EControl's server side: it decodes the compressed updates
// (server.Decoder) and adds the estimators' mean.
type ecRule struct {
	BaseRule
	o       EControlOptions
	n       int
	clients int
	hbar    []float64 // mean over every client of h_i
	sum     []float64 // scratch
}

// DecodeUpdate rebuilds Delta_i from the compressed tensors, checking
// that they are exactly what the options allow.
func (r *ecRule) DecodeUpdate(m *transport.Message, n int) ([]float32, error) {
	if n != r.n {
		return nil, fmt.Errorf("econtrol: updates of %d values, the rule expects %d", n, r.n)
	}
	out := make([]float32, n)
	if r.o.Compressor == "topk" {
		idx, val := m.Tensor(ecIndex), m.Tensor(ecValue)
		k := topK(r.o.Ratio, n)
		if idx == nil || val == nil || len(idx.Data) != k || len(val.Data) != k {
			return nil, fmt.Errorf("econtrol: want %q and %q tensors of %d values", ecIndex, ecValue, k)
		}
		prev := -1
		for i, f := range idx.Data {
			j := int(f)
			if float32(j) != f || j <= prev || j >= n {
				return nil, fmt.Errorf("econtrol: index %d is %v (want ascending integers below %d)", i, f, n)
			}
			out[j] = val.Data[i]
			prev = j
		}
		return out, nil
	}
	s := quantLevels(r.o.Bits)
	nb := (n + ecBlock - 1) / ecBlock
	words := (n*r.o.Bits + ecWordBits - 1) / ecWordBits
	sc, codes := m.Tensor(ecScale), m.Tensor(ecCodes)
	if sc == nil || codes == nil || len(sc.Data) != nb || len(codes.Data) != words {
		return nil, fmt.Errorf("econtrol: want %q of %d values and %q of %d", ecScale, nb, ecCodes, words)
	}
	for b, x := range sc.Data {
		if !(x >= 0) {
			return nil, fmt.Errorf("econtrol: scale of block %d is %v", b, x)
		}
	}
	var acc uint64
	var nacc, w int
	mask := uint64(1)<<r.o.Bits - 1
	for j := range out {
		if nacc < r.o.Bits {
			f := codes.Data[w]
			v := uint64(f)
			if float32(v) != f || v >= 1<<ecWordBits {
				return nil, fmt.Errorf("econtrol: code word %d is %v (want an integer below 2^24)", w, f)
			}
			acc |= v << nacc
			nacc += ecWordBits
			w++
		}
		q := int(acc&mask) - s
		acc >>= r.o.Bits
		nacc -= r.o.Bits
		if q > s {
			return nil, fmt.Errorf("econtrol: code %d of entry %d is out of range", q+s, j)
		}
		out[j] = dequant(sc.Data[j/ecBlock], q, s)
	}
	return out, nil
}

// BeforeApply adds hbar to the mean of the round's Delta_i.
func (r *ecRule) BeforeApply(agg []float32, _ int) {
	for j, h := range r.hbar {
		agg[j] += float32(h)
	}
}

// AfterApply adds sum_i Delta_i / N to hbar (float64, in client-id order).
func (r *ecRule) AfterApply(a *server.Applied) error {
	clear(r.sum)
	for _, u := range a.Ups {
		for j, d := range u.Delta {
			r.sum[j] += float64(d)
		}
	}
	inv := 1 / float64(r.clients)
	for j, s := range r.sum {
		r.hbar[j] += s * inv
	}
	return nil
}

func (r *ecRule) SaveState(w io.Writer) error { return gob.NewEncoder(w).Encode(r.hbar) }

func (r *ecRule) LoadState(rd io.Reader) error {
	var h []float64
	if err := gob.NewDecoder(rd).Decode(&h); err != nil {
		return fmt.Errorf("econtrol state: %w", err)
	}
	if len(h) != r.n {
		return fmt.Errorf("econtrol state: %d estimator values, the model has %d", len(h), r.n)
	}
	r.hbar = h
	return nil
}

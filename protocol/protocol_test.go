package protocol

import (
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/nn"
)

// loraModel is a 16-8-4 MLP with rank-2 adapters on every weight, its
// parameters initialised and B set to random values.
func loraModel(t testing.TB) (*nn.Model, []float32) {
	t.Helper()
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{8}, Classes: 4, Heads: 1,
		LoRA: &nn.LoRASpec{Rank: 2, Alpha: 4}})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, m.NumParams())
	r := rand.New(rand.NewPCG(3, 4))
	m.Init(p, r)
	for _, ad := range m.Adapters() {
		for i := ad.B.Offset; i < ad.B.Offset+ad.B.Rows*ad.B.Cols; i++ {
			p[i] = float32(r.NormFloat64() * 0.3)
		}
	}
	return m, p
}

// Trainable picks the base in pretraining rounds, the LoRA factors of a
// LoRA method otherwise; Compact and Scatter move exactly those values.
func TestTrainableCompactScatter(t *testing.T) {
	m, p := loraModel(t)
	cases := []struct {
		lora  string
		flags uint32
		want  nn.Ranges
	}{
		{"", 0, m.AllParams()},
		{"ab", 0, m.AdapterParams("ab")},
		{"b", FlagSketch, m.AdapterParams("b")},
		{"b", FlagBase, m.BaseParams()},
		{"", FlagBase | FlagNoTrain, m.BaseParams()},
	}
	for i, c := range cases {
		got := Trainable(m, c.lora, c.flags)
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
			t.Errorf("case %d: Trainable(%q, %b) = %v, want %v", i, c.lora, c.flags, got, c.want)
		}
	}
	r := nn.Ranges{{2, 5}, {9, 10}, {20, 24}}
	comp := Compact(make([]float32, r.Size()), p, r)
	want := append(append(append([]float32(nil), p[2:5]...), p[9:10]...), p[20:24]...)
	for i := range want {
		if comp[i] != want[i] {
			t.Fatalf("Compact[%d] = %v, want %v", i, comp[i], want[i])
		}
	}
	back := make([]float32, len(p))
	Scatter(back, comp, r)
	for i := range back {
		in := (i >= 2 && i < 5) || i == 9 || (i >= 20 && i < 24)
		if (in && back[i] != p[i]) || (!in && back[i] != 0) {
			t.Fatalf("Scatter: back[%d] = %v (inside %v), want %v", i, back[i], in, map[bool]float32{true: p[i], false: 0}[in])
		}
	}
}

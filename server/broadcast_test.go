package server

import (
	"testing"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
)

// In a LoRA run the round message carries the whole model when its base
// changed since it was last sent (first round, pretraining, merges into
// W0) and the adapters alone otherwise, with the base's version; other
// runs always carry the whole model and no version.
func TestModelTensorSendsAdaptersWhileBaseUnchanged(t *testing.T) {
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 3, W: 4}, Hidden: []int{10}, Classes: 3, Heads: 1,
		LoRA: &nn.LoRASpec{Rank: 2, Alpha: 2}})
	if err != nil {
		t.Fatal(err)
	}
	params := make([]float32, m.NumParams())
	for i := range params {
		params[i] = float32(i%13) * 0.1
	}
	ranges := protocol.Trainable(m, "ab", 0)
	s := &Server{cfg: Config{LoRA: "ab"}, model: m}
	check := func(step, name string, version float64, whole bool) {
		t.Helper()
		tn, v, ok := s.modelTensor(params, whole)
		if !ok || v.Name != protocol.ScalarBaseVersion || v.Value != version || tn.Name != name {
			t.Fatalf("%s: %s version %v (ok %t), want %s version %v", step, tn.Name, v.Value, ok, name, version)
		}
		if name == protocol.TensorParams {
			if len(tn.Data) != len(params) {
				t.Fatalf("%s: whole model of %d values, want %d", step, len(tn.Data), len(params))
			}
			return
		}
		k := 0
		for _, r := range ranges {
			for i := r[0]; i < r[1]; i++ {
				if tn.Data[k] != params[i] {
					t.Fatalf("%s: adapter value %d is %v, want params[%d] = %v", step, k, tn.Data[k], i, params[i])
				}
				k++
			}
		}
		if k != len(tn.Data) || k >= len(params)/2 {
			t.Fatalf("%s: %d adapter values of %d parameters", step, len(tn.Data), len(params))
		}
	}
	check("first round", protocol.TensorParams, 1, false)
	params[ranges[0][0]] += 1 // a LoRA round moves the factors only
	check("factors moved", protocol.TensorAdapters, 1, false)
	check("resend", protocol.TensorParams, 1, true)
	check("again", protocol.TensorAdapters, 1, false)
	params[0] += 1 // a merge into W0
	check("base moved", protocol.TensorParams, 2, false)
	check("after the merge", protocol.TensorAdapters, 2, false)

	plain := &Server{cfg: Config{}, model: m}
	if tn, _, ok := plain.modelTensor(params, false); ok || tn.Name != protocol.TensorParams {
		t.Errorf("a run without LoRA: %s (versioned %t), want the whole model unversioned", tn.Name, ok)
	}
}

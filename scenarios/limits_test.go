package scenarios

import (
	"strings"
	"testing"
)

func TestSizeLimits(t *testing.T) {
	cases := []struct {
		name, yaml, path string
		line             int
	}{
		{"tasks", "data:\n  tasks: 100000\n", "data.tasks", 2},
		{"clients", "partition:\n  clients: 2000000\n", "partition.clients", 2},
		{"batch", "train:\n  batch_size: 1000000000\n", "train.batch_size", 2},
		{"eval batch", "eval:\n  batch_size: 100000\n", "eval.batch_size", 2},
		{"width", "model:\n  hidden: [100, 100000000]\n  dropout: [0, 0]\n", "model.hidden[1]", 2},
		{"rounds", "train:\n  rounds_per_task: 2000000\n", "train.rounds_per_task", 2},
		{"workers", "train:\n  workers: 5000\n", "train.workers", 2},
		{"conv out", "model:\n  arch: cnn\n  conv: [{out: 10000, kernel: 3}]\n", "model.conv[0].out", 3},
		{"params", "model:\n  hidden: [60000, 60000]\n  dropout: [0, 0]\n", "model.hidden", 2},
		{"synthetic", "data:\n  dataset: synthetic\n  synthetic: {train: 100000000}\n", "data.synthetic.train", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrs(t, c.yaml)
			if len(errs) != 1 || errs[0].Path != c.path || errs[0].Line != c.line || !strings.Contains(errs[0].Msg, "at most") && !strings.Contains(errs[0].Msg, "limit") {
				t.Errorf("Parse(%q) = %v, want one size-limit error at line %d, %s", c.yaml, errs, c.line, c.path)
			}
		})
	}
	// At the limits themselves the scenarios are valid.
	mustParse(t, "data:\n  tasks: 1000\ntrain:\n  batch_size: 65536\n  rounds_per_task: 1000000\n")
	// The paper's model is far below the parameter limit.
	s := mustParse(t, "model: {hidden: [400, 400, 400], dropout: [0.2, 0.5, 0.5]}\n")
	if n, ok := s.mlpParams(); !ok || n != 784*400+400+2*(400*400+400)+400*10+10 {
		t.Errorf("mlpParams = %d, %v, want the 784-400-400-400-10 count", n, ok)
	}
}

func TestMLPParamsSaturates(t *testing.T) {
	s := Default()
	s.Model.Hidden = []int{1 << 40, 1 << 40, 1 << 40}
	if n, ok := s.mlpParams(); !ok || n <= MaxParams || n < 0 {
		t.Errorf("mlpParams of huge layers = %d, %v, want a large positive count", n, ok)
	}
}

package sim

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/scenarios"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden from this build")

// goldenLevel is the simd level the recorded runs were made with: float32
// sums depend on the kernel, so other levels and backends skip the test.
const goldenLevel = "avx512"

// goldenGroups are the recorded runs: a built-in scenario with overrides,
// covering every method (the centralised references, the penalties, FOT,
// every LoRA variant with FOT and DP) and a reduced paper run.
// The groups marked resume are run (with checkpoints) and compared by
// TestResumeMatchesUninterruptedRun instead, which resumes them too.
var goldenGroups = []struct {
	dir, scenario string
	sets          []string
	resume        bool
}{
	{"qsdef", "quickstart", nil, false},
	{"qs", "quickstart", []string{"methods=[fedavg,fot,fedprox,ewc,fedcurv,flwf,central-seq,central-joint,central-gpm]", "train.rounds_per_task=3"}, true},
	{"lora", "fedsvd-dp", []string{"seeds=[0]", "train.rounds_per_task=6", "methods=[fedavg-lora,ffa-lora,fedsvd,{name: fedsvd, fot: true, period: 2},{name: fedsvd, dp_epsilon: 6},flora,fedex-lora]"}, true},
	{"pm", "paper/pmnist-iid", []string{"train.rounds_per_task=3", "data.tasks=3", "seeds=[0]", "eval.every=1"}, false},
}

var wallSeconds = regexp.MustCompile(`"wall_seconds": [0-9.e+-]+`)

// TestRunsMatchRecordedBuild runs every golden group and compares each
// run's record files with those the earlier build wrote (wall time
// aside), byte for byte: moving code must not change a single result.
func TestRunsMatchRecordedBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of training")
	}
	if s, ok := nn.ActiveBackend().(*gemm.SIMD); !ok || s.Level() != goldenLevel {
		t.Skipf("the records were made with the simd backend at level %s; this build uses %s", goldenLevel, nn.ActiveBackend().Name())
	}
	env := NewEnv()
	for _, g := range goldenGroups {
		if g.resume && !*updateGolden {
			continue
		}
		sc, err := scenarios.Load(g.scenario, g.sets)
		if err != nil {
			t.Fatalf("%s: %v", g.dir, err)
		}
		for _, r := range sc.Runs() {
			name := filepath.Base(DefaultOut(sc, r))
			out := filepath.Join(t.TempDir(), name)
			if _, err := env.Run(context.Background(), sc, r, Options{Out: out}); err != nil {
				t.Fatalf("%s/%s: %v", g.dir, name, err)
			}
			want := filepath.Join("testdata", "golden", g.dir, name)
			for _, f := range []string{"result.json", "scenario.yaml", "acc_matrix.csv", "curves.csv"} {
				got, err := os.ReadFile(filepath.Join(out, f))
				if err != nil {
					t.Fatal(err)
				}
				if f == "result.json" {
					got = wallSeconds.ReplaceAll(got, []byte(`"wall_seconds": 0`))
				}
				path := filepath.Join(want, f)
				if *updateGolden {
					if err := os.MkdirAll(want, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				w, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (every run of the groups has a recorded folder)", err)
				}
				if !bytes.Equal(got, w) {
					t.Errorf("%s/%s/%s differs from the recorded build:\ngot:\n%s\nwant:\n%s", g.dir, name, f, got, w)
				}
			}
		}
	}
}

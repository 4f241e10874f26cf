package server

import (
	"fmt"
	"sync"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
)

// Evaluator measures the accuracy of a model on the tasks' test sets, on a
// pool of workers. Correct counts are integers, so the result does not
// depend on the number of workers.
type Evaluator struct {
	model   *nn.Model
	tests   []data.View
	heads   []int
	batch   int
	workers int
	pool    sync.Pool // *evalWorker
}

type evalWorker struct {
	ws   *nn.Workspace
	x    []float32
	y    []int32
	pred []int32
	rows []int32
}

// NewEvaluator returns an evaluator of model on tests[t] with head heads[t].
func NewEvaluator(model *nn.Model, tests []data.View, heads []int, batch, workers int) *Evaluator {
	if len(tests) != len(heads) {
		panic(fmt.Sprintf("server: %d test sets but %d heads", len(tests), len(heads)))
	}
	e := &Evaluator{model: model, tests: tests, heads: heads, batch: max(batch, 1), workers: max(workers, 1)}
	e.pool.New = func() any {
		return &evalWorker{
			ws:   model.NewWorkspace(e.batch),
			x:    make([]float32, e.batch*model.InputSize()),
			y:    make([]int32, e.batch),
			pred: make([]int32, e.batch),
			rows: make([]int32, e.batch),
		}
	}
	return e
}

// Accuracy returns the test accuracy in percent of params on task t.
func (e *Evaluator) Accuracy(params []float32, t int) float64 {
	v := e.tests[t]
	n := v.Len()
	if n == 0 {
		return 0
	}
	chunks := (n + e.batch - 1) / e.batch
	next := make(chan int, chunks)
	for c := 0; c < chunks; c++ {
		next <- c
	}
	close(next)
	var (
		mu      sync.Mutex
		correct int
		wg      sync.WaitGroup
	)
	for w := 0; w < min(e.workers, chunks); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ew := e.pool.Get().(*evalWorker)
			defer e.pool.Put(ew)
			local := 0
			for c := range next {
				lo := c * e.batch
				b := min(e.batch, n-lo)
				rows := ew.rows[:b]
				for i := range rows {
					rows[i] = int32(lo + i)
				}
				in := e.model.InputSize()
				v.Gather(ew.x[:b*in], ew.y[:b], rows)
				ew.ws.Predict(params, ew.x[:b*in], b, e.heads[t], ew.pred[:b])
				for i := 0; i < b; i++ {
					if ew.pred[i] == ew.y[i] {
						local++
					}
				}
			}
			mu.Lock()
			correct += local
			mu.Unlock()
		}()
	}
	wg.Wait()
	return 100 * float64(correct) / float64(n)
}

// Tasks is the number of tasks the evaluator knows.
func (e *Evaluator) Tasks() int { return len(e.tests) }

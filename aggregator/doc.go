// Package aggregator is the pure maths of the server side of federated
// training: averaging client updates (FedAvg), and FOT's subspace memory and
// orthogonal projection (docs/ALGORITHMS.md §1 and §3).
//
// It works on flat float32 parameter vectors and float64 bases, imports no
// NATS, no clock and no goroutines, and never reorders its inputs: callers
// pass updates in client-id order so that sums are bit-reproducible.
//
//	agg := make([]float32, len(global))
//	aggregator.Mean(agg, updates, aggregator.Uniform)
//	aggregator.Apply(global, agg, 1)
//
// # FOT: Federated Orthogonal Training
//
// FOT (docs/ALGORITHMS.md §3) keeps, for every projected layer (shared-trunk
// weights W, d_out x d_in), a Basis: an orthonormal U (d_in x k) of the old
// tasks' input subspace, in float64 with a float32 copy for the hot paths.
//
// Every round of a task t > 0 the server projects each such layer's block of
// the aggregate, D <- D - (D U) U^T, so that the update cannot change the
// layer's response to old inputs (FedProject). A Projector owns the scratch
// and a gemm backend and allocates nothing in steady state.
//
// At the end of a task every client sketches, per layer, the part of its
// inputs outside the basis, Y = (A - U U^T A) G with private noise G, and
// sends Y, ratio = ||R||_F/||A||_F and n (Sketch; GPSE). The server sums the
// clients' Y (only the sum is needed, so secure aggregation fits), and
// Extend picks how many of the sum's top left singular vectors to add (the
// FOT rule ThresholdFOT + SelectK, or GPM's SelectGPM) and grows the basis
// with a thin QR. Per-client and per-round sketches and projections are
// float32; SVD and QR are float64.
//
//	// server, once per projected layer:
//	basis := aggregator.NewBasis(view.Cols)
//	proj := aggregator.NewProjector(nil)
//	// every round of task t > 0, after Mean:
//	d := agg[view.Offset : view.Offset+view.Rows*view.Cols]
//	removed := proj.Project(d, view.Rows, view.Cols, basis)
//
//	// client, end of task, per layer (basis received as basis.Float32()):
//	sk := aggregator.NewSketch(dIn, aggregator.SketchCols(dIn, 1), maxRows,
//		basis, aggregator.SketchUniform, nn.ActiveBackend())
//	for each batch: x, rows, _ := ws.LayerInput(w); sk.Add(x, rows, r)
//	send(sk.Y(), sk.Ratio(), sk.N())
//
//	// server, end of task t, per layer, ySum = sum of the clients' Y:
//	cfg := aggregator.GPSEConfig{Epsilon: 0.96, Criterion: aggregator.CriterionFOT} // the paper's PMNIST IID setting
//	added, epsPrime, err := cfg.Extend(basis, ySum, dIn, m, ratios, ns, t)
package aggregator

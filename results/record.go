package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Schema is the schema string this package writes into every record and
// the only one [ReadRecord] accepts.
const Schema = "fotsim.result/v1"

var (
	// ErrSchema is returned when a record's schema field is missing or not
	// [Schema].
	ErrSchema = errors.New("results: unsupported record schema")
	// ErrNilRecord is returned when a nil *Record is passed where a record is
	// required.
	ErrNilRecord = errors.New("results: nil record")
)

// Record is the public summary of one run: one scenario x one method x one
// seed. It is a contract with everything that reads result.json: fields are
// added, never renamed or retyped.
//
// Float fields that may be undefined (ACC of an empty matrix, a NaN loss)
// are written as JSON null and read back as NaN. Slices are written as []
// when empty; maps are written with sorted keys; floats are written exactly,
// so identical records give byte-identical JSON.
type Record struct {
	Schema          string  `json:"schema"`            // always [Schema] on output (filled in when empty)
	Scenario        string  `json:"scenario"`          // scenario name
	Method          string  `json:"method"`            // method id, e.g. "fedavg", "fot"
	Seed            uint64  `json:"seed"`              // scenario seed (the rng package's seed)
	Tasks           int     `json:"tasks"`             // number of tasks in the stream
	AccMatrix       Matrix  `json:"acc_matrix"`        // percent; row i = after task i, col j = task j; null = not evaluated
	ACC             float64 `json:"acc"`               // [ACC] of AccMatrix, percent
	FGT             float64 `json:"fgt"`               // [FGT] of AccMatrix (final vs just-learnt), percent points
	BWT             float64 `json:"bwt"`               // [BWT] = -FGT
	Rounds          int     `json:"rounds"`            // communication rounds run in total
	Clients         int     `json:"clients"`           // clients in the federation
	ClientsPerRound int     `json:"clients_per_round"` // clients sampled per round
	BytesUp         int64   `json:"bytes_up"`          // client -> server bytes on the wire
	BytesDown       int64   `json:"bytes_down"`        // server -> client bytes on the wire
	WallSeconds     float64 `json:"wall_seconds"`      // wall-clock duration of the run
	Curves          []Curve `json:"curves"`            // accuracy during training, see [Curve]

	// Extras beyond the core contract.

	MaxFGT          float64      `json:"max_fgt"`          // [MaxFGT] (Chaudhry et al.) of AccMatrix
	MethodLabel     string       `json:"method_label"`     // display label, e.g. "FOT (eps=0.96)"; tables fall back to Method
	Dataset         string       `json:"dataset"`          // e.g. "mnist", "synthetic"
	Stream          string       `json:"stream"`           // e.g. "permuted", "split"
	Backend         string       `json:"backend"`          // GEMM backend name
	RejectedUpdates int          `json:"rejected_updates"` // updates refused (bad version, NaN, stale round, ...)
	LateUpdates     int          `json:"late_updates"`     // updates that missed their round's deadline
	TasksDetail     []TaskDetail `json:"tasks_detail"`     // one entry per task learnt
	FotsimVersion   string       `json:"fotsim_version"`   // version of the simulator that wrote the record

	TrainableParams int     `json:"trainable_params"` // parameters the method trains on its clients (LoRA: the factors it sends)
	PretrainTasks   int     `json:"pretrain_tasks"`   // leading tasks that pretrained the base model (scenario pretrain.tasks)
	FinetuneACC     float64 `json:"finetune_acc"`     // [FinetuneACC]: ACC over the tasks after pretraining (= ACC without pretraining)
	DP              *DP     `json:"dp,omitempty"`     // DP-SGD settings and spent privacy; absent when DP is off

	// Message checks (absent when nothing was rejected). The keys are the
	// reasons of package server (RejectedByReason) and package client
	// (RejectedBroadcastsByReason): "signature", "norm", "task", ...

	RejectedByReason           map[string]int `json:"rejected_by_reason,omitempty"`            // RejectedUpdates by reason
	RejectedBroadcasts         int            `json:"rejected_broadcasts,omitempty"`           // messages on the round subject the client hosts refused (forged, unsigned, malformed)
	RejectedBroadcastsByReason map[string]int `json:"rejected_broadcasts_by_reason,omitempty"` // RejectedBroadcasts by reason

	// System heterogeneity (absent without a scenario system: block).

	System       *SystemTotals `json:"system,omitempty"`        // RoundsDetail summed over the run
	RoundsDetail []RoundDetail `json:"rounds_detail,omitempty"` // one entry per round run

	// Secure aggregation (absent without a scenario secagg: block).

	SecAggBytesUp   int64 `json:"secagg_bytes_up,omitempty"`   // the secure aggregation messages' share of BytesUp (their EncodedLen)
	SecAggBytesDown int64 `json:"secagg_bytes_down,omitempty"` // the secure aggregation messages' share of BytesDown
	SecAggRecovered int   `json:"secagg_recovered,omitempty"`  // clients that shared their keys, then dropped out, and whose masks the survivors' shares removed
}

// RoundDetail is what the system heterogeneity did to one round: clients
// online, sampled among them, failed, over the virtual deadline, and whose
// updates were aggregated; Skipped when fewer than the quorum reported (the
// global model was left unchanged).
type RoundDetail struct {
	Round      int  `json:"round"` // global round index (0-based)
	Task       int  `json:"task"`
	Available  int  `json:"available"`
	Selected   int  `json:"selected"`
	Dropped    int  `json:"dropped"`
	Late       int  `json:"late"`
	Aggregated int  `json:"aggregated"`
	Skipped    bool `json:"skipped"`
}

// SystemTotals sums RoundsDetail over a run.
type SystemTotals struct {
	Selected      int `json:"selected"`
	Dropped       int `json:"dropped"`
	Late          int `json:"late"`
	Aggregated    int `json:"aggregated"`
	SkippedRounds int `json:"skipped_rounds"`
}

// Add counts one round in t.
func (t *SystemTotals) Add(d RoundDetail) {
	t.Selected += d.Selected
	t.Dropped += d.Dropped
	t.Late += d.Late
	t.Aggregated += d.Aggregated
	if d.Skipped {
		t.SkippedRounds++
	}
}

// DP is the privacy record of a run with DP-SGD (docs/ALGORITHMS.md §5): the
// target, the clipping norm, every client's calibrated noise multiplier and
// the epsilon each client actually spent (RDP accountant for the
// Poisson-subsampled Gaussian over the DP steps it took; 0 for a client
// that never trained).
type DP struct {
	EpsilonTarget   float64   `json:"epsilon_target"`
	Delta           float64   `json:"delta"`
	Clip            float64   `json:"clip"`
	Sigma           []float64 `json:"sigma"`             // per client
	EpsilonSpent    []float64 `json:"epsilon_spent"`     // per client
	EpsilonSpentMax float64   `json:"epsilon_spent_max"` // max over clients
}

// Curve is one point of the accuracy-during-training curves: once Round
// rounds of the whole run have finished (1 after the first round), while
// learning task Task, the
// global model scored Acc[j] percent on task j, one entry per task seen so
// far (len(Acc) == Task+1). NaN entries are written as null.
type Curve struct {
	Round int       `json:"round"`
	Task  int       `json:"task"`
	Acc   []float64 `json:"acc"`
}

// TaskDetail describes how one task was learnt. BasisDims and
// ProjectedFraction are filled by FOT: the number of basis vectors each
// layer's subspace memory holds after the task, and the fraction of each
// layer's aggregated update removed by the projection during the task, as
// the aggregator reports it. Keys are layer names (nn.ParamView.Name); both
// maps are left out of the JSON when empty.
type TaskDetail struct {
	Task              int                `json:"task"`
	Rounds            int                `json:"rounds"`
	TrainLoss         float64            `json:"train_loss"`                   // mean training loss of the task's client updates
	BasisDims         map[string]int     `json:"basis_dims,omitempty"`         // FOT: basis dimension k per projected layer after the task
	ProjectedFraction map[string]float64 `json:"projected_fraction,omitempty"` // FOT: mean over the task's rounds of ||D U U^T|| / ||D||
	BasisCapacity     map[string]int     `json:"basis_capacity,omitempty"`     // FOT: d_in per projected layer (a full basis has k = d_in)
}

// FillMetrics sets ACC, FGT, BWT, MaxFGT and FinetuneACC from AccMatrix
// (and PretrainTasks).
func (r *Record) FillMetrics() {
	r.ACC = ACC(r.AccMatrix)
	r.FGT = FGT(r.AccMatrix)
	r.BWT = BWT(r.AccMatrix)
	r.MaxFGT = MaxFGT(r.AccMatrix)
	r.FinetuneACC = FinetuneACC(r.AccMatrix, r.PretrainTasks)
}

// jfloat is a float64 that JSON-encodes NaN and ±Inf as null and decodes
// null as NaN.
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

func (f *jfloat) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		*f = jfloat(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*f = jfloat(v)
	return nil
}

func toJ(xs []float64) []jfloat {
	out := make([]jfloat, len(xs)) // never nil: written as [], not null
	for i, x := range xs {
		out[i] = jfloat(x)
	}
	return out
}

func fromJ(xs []jfloat) []float64 {
	if len(xs) == 0 {
		return nil
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// recordJSON mirrors Record field for field (same order, same tags), with
// NaN-safe floats. TestRecordMirrorsWire keeps the two in step.
type recordJSON struct {
	Schema          string       `json:"schema"`
	Scenario        string       `json:"scenario"`
	Method          string       `json:"method"`
	Seed            uint64       `json:"seed"`
	Tasks           int          `json:"tasks"`
	AccMatrix       Matrix       `json:"acc_matrix"`
	ACC             jfloat       `json:"acc"`
	FGT             jfloat       `json:"fgt"`
	BWT             jfloat       `json:"bwt"`
	Rounds          int          `json:"rounds"`
	Clients         int          `json:"clients"`
	ClientsPerRound int          `json:"clients_per_round"`
	BytesUp         int64        `json:"bytes_up"`
	BytesDown       int64        `json:"bytes_down"`
	WallSeconds     jfloat       `json:"wall_seconds"`
	Curves          []Curve      `json:"curves"`
	MaxFGT          jfloat       `json:"max_fgt"`
	MethodLabel     string       `json:"method_label"`
	Dataset         string       `json:"dataset"`
	Stream          string       `json:"stream"`
	Backend         string       `json:"backend"`
	RejectedUpdates int          `json:"rejected_updates"`
	LateUpdates     int          `json:"late_updates"`
	TasksDetail     []TaskDetail `json:"tasks_detail"`
	FotsimVersion   string       `json:"fotsim_version"`
	TrainableParams int          `json:"trainable_params"`
	PretrainTasks   int          `json:"pretrain_tasks"`
	FinetuneACC     jfloat       `json:"finetune_acc"`
	DP              *DP          `json:"dp,omitempty"`

	RejectedByReason           map[string]int `json:"rejected_by_reason,omitempty"`
	RejectedBroadcasts         int            `json:"rejected_broadcasts,omitempty"`
	RejectedBroadcastsByReason map[string]int `json:"rejected_broadcasts_by_reason,omitempty"`

	System       *SystemTotals `json:"system,omitempty"`
	RoundsDetail []RoundDetail `json:"rounds_detail,omitempty"`

	SecAggBytesUp   int64 `json:"secagg_bytes_up,omitempty"`
	SecAggBytesDown int64 `json:"secagg_bytes_down,omitempty"`
	SecAggRecovered int   `json:"secagg_recovered,omitempty"`
}

// MarshalJSON writes the record in its fixed field order, with NaN as null,
// empty slices as [] and an empty Schema as [Schema].
func (r Record) MarshalJSON() ([]byte, error) {
	w := recordJSON{
		Schema: r.Schema, Scenario: r.Scenario, Method: r.Method, Seed: r.Seed, Tasks: r.Tasks,
		AccMatrix: r.AccMatrix, ACC: jfloat(r.ACC), FGT: jfloat(r.FGT), BWT: jfloat(r.BWT),
		Rounds: r.Rounds, Clients: r.Clients, ClientsPerRound: r.ClientsPerRound,
		BytesUp: r.BytesUp, BytesDown: r.BytesDown, WallSeconds: jfloat(r.WallSeconds),
		Curves: r.Curves, MaxFGT: jfloat(r.MaxFGT), MethodLabel: r.MethodLabel,
		Dataset: r.Dataset, Stream: r.Stream, Backend: r.Backend,
		RejectedUpdates: r.RejectedUpdates, LateUpdates: r.LateUpdates,
		TasksDetail: r.TasksDetail, FotsimVersion: r.FotsimVersion,
		TrainableParams: r.TrainableParams, PretrainTasks: r.PretrainTasks,
		FinetuneACC: jfloat(r.FinetuneACC), DP: r.DP,
		RejectedByReason: r.RejectedByReason, RejectedBroadcasts: r.RejectedBroadcasts,
		RejectedBroadcastsByReason: r.RejectedBroadcastsByReason,
		System:                     r.System, RoundsDetail: r.RoundsDetail,
		SecAggBytesUp: r.SecAggBytesUp, SecAggBytesDown: r.SecAggBytesDown, SecAggRecovered: r.SecAggRecovered,
	}
	if w.Schema == "" {
		w.Schema = Schema
	}
	if w.Curves == nil {
		w.Curves = []Curve{}
	}
	if w.TasksDetail == nil {
		w.TasksDetail = []TaskDetail{}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a record; null floats become NaN, empty arrays become
// nil slices, unknown fields (from newer writers) are ignored. It does not
// check the schema; [ReadRecord] does.
func (r *Record) UnmarshalJSON(data []byte) error {
	var w recordJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*r = Record{
		Schema: w.Schema, Scenario: w.Scenario, Method: w.Method, Seed: w.Seed, Tasks: w.Tasks,
		AccMatrix: w.AccMatrix, ACC: float64(w.ACC), FGT: float64(w.FGT), BWT: float64(w.BWT),
		Rounds: w.Rounds, Clients: w.Clients, ClientsPerRound: w.ClientsPerRound,
		BytesUp: w.BytesUp, BytesDown: w.BytesDown, WallSeconds: float64(w.WallSeconds),
		Curves: w.Curves, MaxFGT: float64(w.MaxFGT), MethodLabel: w.MethodLabel,
		Dataset: w.Dataset, Stream: w.Stream, Backend: w.Backend,
		RejectedUpdates: w.RejectedUpdates, LateUpdates: w.LateUpdates,
		TasksDetail: w.TasksDetail, FotsimVersion: w.FotsimVersion,
		TrainableParams: w.TrainableParams, PretrainTasks: w.PretrainTasks,
		FinetuneACC: float64(w.FinetuneACC), DP: w.DP,
		RejectedByReason: w.RejectedByReason, RejectedBroadcasts: w.RejectedBroadcasts,
		RejectedBroadcastsByReason: w.RejectedBroadcastsByReason,
		System:                     w.System, RoundsDetail: w.RoundsDetail,
		SecAggBytesUp: w.SecAggBytesUp, SecAggBytesDown: w.SecAggBytesDown, SecAggRecovered: w.SecAggRecovered,
	}
	if len(r.AccMatrix) == 0 {
		r.AccMatrix = nil
	}
	if len(r.Curves) == 0 {
		r.Curves = nil
	}
	if len(r.TasksDetail) == 0 {
		r.TasksDetail = nil
	}
	return nil
}

type curveJSON struct {
	Round int      `json:"round"`
	Task  int      `json:"task"`
	Acc   []jfloat `json:"acc"`
}

// MarshalJSON writes NaN accuracies as null and a nil Acc as [].
func (c Curve) MarshalJSON() ([]byte, error) {
	return json.Marshal(curveJSON{Round: c.Round, Task: c.Task, Acc: toJ(c.Acc)})
}

// UnmarshalJSON reads null accuracies as NaN.
func (c *Curve) UnmarshalJSON(data []byte) error {
	var w curveJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*c = Curve{Round: w.Round, Task: w.Task, Acc: fromJ(w.Acc)}
	return nil
}

type taskDetailJSON struct {
	Task              int               `json:"task"`
	Rounds            int               `json:"rounds"`
	TrainLoss         jfloat            `json:"train_loss"`
	BasisDims         map[string]int    `json:"basis_dims,omitempty"`
	ProjectedFraction map[string]jfloat `json:"projected_fraction,omitempty"`
	BasisCapacity     map[string]int    `json:"basis_capacity,omitempty"`
}

// MarshalJSON writes NaN values as null and map keys sorted.
func (d TaskDetail) MarshalJSON() ([]byte, error) {
	w := taskDetailJSON{Task: d.Task, Rounds: d.Rounds, TrainLoss: jfloat(d.TrainLoss), BasisDims: d.BasisDims, BasisCapacity: d.BasisCapacity}
	if len(d.ProjectedFraction) > 0 {
		w.ProjectedFraction = make(map[string]jfloat, len(d.ProjectedFraction))
		for k, v := range d.ProjectedFraction {
			w.ProjectedFraction[k] = jfloat(v)
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads null values as NaN.
func (d *TaskDetail) UnmarshalJSON(data []byte) error {
	var w taskDetailJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*d = TaskDetail{Task: w.Task, Rounds: w.Rounds, TrainLoss: float64(w.TrainLoss), BasisDims: w.BasisDims, BasisCapacity: w.BasisCapacity}
	if len(w.ProjectedFraction) > 0 {
		d.ProjectedFraction = make(map[string]float64, len(w.ProjectedFraction))
		for k, v := range w.ProjectedFraction {
			d.ProjectedFraction[k] = float64(v)
		}
	}
	return nil
}

// WriteRecord writes rec to w as indented JSON followed by a newline: the
// exact bytes of result.json. Indentation is two spaces, one record field
// per line, one matrix row, curve point or task detail per line. Identical
// records give identical bytes.
func WriteRecord(w io.Writer, rec *Record) error {
	b, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("results: write record: %w", err)
	}
	return nil
}

func encodeRecord(rec *Record) ([]byte, error) {
	if rec == nil {
		return nil, ErrNilRecord
	}
	compact, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("results: encode record: %w", err)
	}
	b, err := prettyJSON(compact)
	if err != nil {
		return nil, fmt.Errorf("results: indent record: %w", err)
	}
	return b, nil
}

// DecodeRecord reads one record from JSON and checks its schema; a missing
// or different schema gives an error wrapping [ErrSchema].
func DecodeRecord(data []byte) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("results: decode record: %w", err)
	}
	if rec.Schema != Schema {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrSchema, rec.Schema, Schema)
	}
	return &rec, nil
}

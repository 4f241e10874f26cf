package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// Matrix is an accuracy matrix in percent: m[i][j] is the test accuracy on
// task j of the global model at the end of task i. NaN means "not
// evaluated"; a row shorter than j+1 reads as NaN at column j. Rows may be
// ragged (row i usually holds the i+1 tasks seen so far).
//
// In JSON a Matrix is an array of arrays of numbers with NaN (and ±Inf)
// written as null; null reads back as NaN.
type Matrix [][]float64

// NewMatrix returns a tasks x tasks matrix filled with NaN.
func NewMatrix(tasks int) Matrix {
	m := make(Matrix, tasks)
	for i := range m {
		m[i] = make([]float64, tasks)
		for j := range m[i] {
			m[i][j] = math.NaN()
		}
	}
	return m
}

// At returns m[i][j], or NaN when the cell lies outside the matrix.
func (m Matrix) At(i, j int) float64 {
	if i < 0 || i >= len(m) || j < 0 || j >= len(m[i]) {
		return math.NaN()
	}
	return m[i][j]
}

// Cols returns the length of the longest row.
func (m Matrix) Cols() int {
	n := 0
	for _, row := range m {
		n = max(n, len(row))
	}
	return n
}

// MarshalJSON writes the matrix with NaN and ±Inf as null. A nil matrix is
// written as [].
func (m Matrix) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, row := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for j, v := range row {
			if j > 0 {
				b.WriteByte(',')
			}
			s, err := jfloat(v).MarshalJSON()
			if err != nil {
				return nil, err
			}
			b.Write(s)
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// UnmarshalJSON reads an array of arrays of numbers or nulls; null becomes
// NaN. A JSON null matrix leaves m unchanged, as encoding/json does for
// slices.
func (m *Matrix) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	var rows [][]jfloat
	if err := json.Unmarshal(data, &rows); err != nil {
		return fmt.Errorf("results: accuracy matrix: %w", err)
	}
	out := make(Matrix, len(rows))
	for i, row := range rows {
		out[i] = make([]float64, len(row))
		for j, v := range row {
			out[i][j] = float64(v)
		}
	}
	*m = out
	return nil
}

// ACC is the average accuracy after the last task:
//
//	ACC = (1/T) * sum_{j<T} m[T-1][j],  T = len(m).
//
// It returns NaN when T = 0 or when any of those cells is NaN (a task that
// was not evaluated makes the average undefined rather than silently
// smaller or larger).
func ACC(m Matrix) float64 {
	t := len(m)
	if t == 0 {
		return math.NaN()
	}
	var s float64
	for j := range t {
		s += m.At(t-1, j)
	}
	return s / float64(t)
}

// FinetuneACC is ACC restricted to the tasks after the first pretrain
// ones: the mean of the last row over columns pretrain..T-1 (fine-tuning
// accuracy when the first tasks only pretrained a base model). It is ACC
// when pretrain <= 0 and NaN when no task is left.
func FinetuneACC(m Matrix, pretrain int) float64 {
	t := len(m)
	pretrain = max(pretrain, 0)
	if t == 0 || pretrain >= t {
		return math.NaN()
	}
	var s float64
	for j := pretrain; j < t; j++ {
		s += m.At(t-1, j)
	}
	return s / float64(t-pretrain)
}

// FGT is forgetting as the FOT paper (Bakman et al., ICLR 2024) reports it:
// the drop from the accuracy right after a task was learnt to the final
// accuracy, averaged over every task but the last:
//
//	FGT = (1/(T-1)) * sum_{j<T-1} (m[j][j] - m[T-1][j]),  T = len(m).
//
// Positive means forgetting. The reference point is m[j][j], not the best
// accuracy over history (see [MaxFGT] for that one). FGT is 0 when T = 1,
// NaN when T = 0 or when any cell it needs is NaN.
func FGT(m Matrix) float64 {
	t := len(m)
	switch t {
	case 0:
		return math.NaN()
	case 1:
		return 0
	}
	var s float64
	for j := range t - 1 {
		s += m.At(j, j) - m.At(t-1, j)
	}
	return s / float64(t-1)
}

// BWT is backward transfer (Lopez-Paz & Ranzato 2017),
//
//	BWT = (1/(T-1)) * sum_{j<T-1} (m[T-1][j] - m[j][j]) = -FGT,
//
// so negative means forgetting. BWT is 0 (never -0) when T = 1, NaN when
// T = 0 or when any cell it needs is NaN.
func BWT(m Matrix) float64 {
	f := FGT(m)
	if f == 0 {
		return 0 // not -0, which JSON would print as "-0"
	}
	return -f
}

// MaxFGT is max-based forgetting (Chaudhry et al. 2018): the drop from the
// best accuracy a task ever had before the last task to its final
// accuracy, averaged over every task but the last:
//
//	MaxFGT = (1/(T-1)) * sum_{j<T-1} (max_{j<=i<T-1} m[i][j] - m[T-1][j]).
//
// The maximum runs over the rows from the one where task j was learnt
// (i = j) to the one before the last; rows before task j was learnt are
// left out, because an accuracy measured before training on a task is not
// something that can be forgotten. On the usual lower-triangular matrix
// (unseen tasks not evaluated) this is exactly Chaudhry's max over
// i < T-1. NaN cells are skipped inside the maximum; since m[j][j] takes
// part in it, MaxFGT >= FGT whenever both are defined. MaxFGT is 0 when
// T = 1 and NaN when T = 0, when a final accuracy m[T-1][j] is NaN, or when
// every candidate of a maximum is NaN.
func MaxFGT(m Matrix) float64 {
	t := len(m)
	switch t {
	case 0:
		return math.NaN()
	case 1:
		return 0
	}
	var s float64
	for j := range t - 1 {
		best := math.NaN()
		for i := j; i < t-1; i++ {
			if v := m.At(i, j); !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
				best = v
			}
		}
		s += best - m.At(t-1, j)
	}
	return s / float64(t-1)
}

// MeanStd returns the mean and the sample standard deviation (divisor n-1)
// of xs, computed in two passes. For one value the std is 0; for none both
// are NaN. A NaN in xs makes both NaN.
func MeanStd(xs []float64) (mean, std float64) {
	n := len(xs)
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(n)
	if n == 1 {
		if math.IsNaN(mean) {
			return mean, mean
		}
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(n-1))
}

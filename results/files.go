package results

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// File names inside a run directory written by [Write].
const (
	RecordFile    = "result.json"
	MatrixFile    = "acc_matrix.csv"
	CurvesFile    = "curves.csv"
	ScenarioFile  = "scenario.yaml"
	filePerm      = 0o644
	directoryPerm = 0o755
)

// Write stores one run in dir (created with its parents when missing):
//
//	result.json     the record, as [WriteRecord] writes it
//	acc_matrix.csv  the accuracy matrix, as [WriteMatrixCSV] writes it
//	curves.csv      the accuracy curves, as [WriteCurvesCSV] writes it
//	scenario.yaml   resolvedScenario verbatim (not written when it is nil)
//
// Every file is written to a temporary file in dir, synced and renamed over
// its final name, so a reader (or a crash) never sees a half-written file.
// result.json is renamed last: when it exists, the other files of the same
// run are complete. Existing files are replaced.
func Write(dir string, rec *Record, resolvedScenario []byte) error {
	if rec == nil {
		return ErrNilRecord
	}
	tasks := tableWidth(rec)
	var mat, cur bytes.Buffer
	if err := WriteMatrixCSV(&mat, rec.AccMatrix, tasks); err != nil {
		return err
	}
	if err := WriteCurvesCSV(&cur, rec.Curves, tasks); err != nil {
		return err
	}
	js, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, directoryPerm); err != nil {
		return fmt.Errorf("results: create run directory: %w", err)
	}
	files := []struct {
		name string
		data []byte
		skip bool
	}{
		{ScenarioFile, resolvedScenario, resolvedScenario == nil},
		{MatrixFile, mat.Bytes(), false},
		{CurvesFile, cur.Bytes(), false},
		{RecordFile, js, false}, // last: its presence marks a complete directory
	}
	for _, f := range files {
		if f.skip {
			continue
		}
		if err := WriteFileAtomic(dir, f.name, f.data); err != nil {
			return err
		}
	}
	syncDir(dir)
	return nil
}

// WriteFileAtomic writes data to dir/name through a synced temporary file
// in the same directory and a rename, so that a reader never sees half a
// file and a crash leaves the old file or the new one. Errors name the file.
func WriteFileAtomic(dir, name string, data []byte) error {
	return writeAtomic(dir, name, data, true)
}

// ReplaceFile is WriteFileAtomic without the sync: a reader, or a process
// killed at any point, still sees the old file or the new one whole, but
// an operating system crash may lose the new one. It suits a file
// replaced very often (a checkpoint after every round), where a sync
// would cost more than the work it protects.
func ReplaceFile(dir, name string, data []byte) error {
	return writeAtomic(dir, name, data, false)
}

func writeAtomic(dir, name string, data []byte, sync bool) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("results: write %s: %w", filepath.Join(dir, name), err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("results: write %s: %w", filepath.Join(dir, name), err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(filePerm); err != nil {
		return err
	}
	if sync {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// syncDir makes the renames durable where the platform allows it. It is
// best effort: some file systems refuse to sync a directory, and the
// renames are atomic whether or not this succeeds.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// ReadRecord reads a result.json written by [Write] or [WriteRecord]. A
// missing or different schema gives an error wrapping [ErrSchema].
func ReadRecord(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("results: read record: %w", err)
	}
	rec, err := DecodeRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// WriteMatrixCSV writes m as CSV with the header
//
//	after_task,task0,task1,...,task{n-1}
//
// where n = max(tasks, m.Cols()), then one line per row i starting with i.
// Values are written exactly (shortest round-trip form); NaN, ±Inf and
// missing cells are empty.
func WriteMatrixCSV(w io.Writer, m Matrix, tasks int) error {
	n := max(tasks, m.Cols())
	cw := csv.NewWriter(w)
	rec := make([]string, 0, n+1)
	rec = append(rec, "after_task")
	rec = appendTaskHeader(rec, n)
	if err := cw.Write(rec); err != nil {
		return fmt.Errorf("results: write matrix csv: %w", err)
	}
	for i, row := range m {
		rec = append(rec[:0], strconv.Itoa(i))
		rec = appendValues(rec, row, n)
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("results: write matrix csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("results: write matrix csv: %w", err)
	}
	return nil
}

// WriteCurvesCSV writes the curves as CSV with the header
//
//	round,task,task0,task1,...,task{n-1}
//
// where n = max(tasks, longest Acc), then one line per curve point.
// Values are written exactly; NaN, ±Inf and tasks not yet seen are empty.
func WriteCurvesCSV(w io.Writer, curves []Curve, tasks int) error {
	n := tasks
	for _, c := range curves {
		n = max(n, len(c.Acc))
	}
	cw := csv.NewWriter(w)
	rec := make([]string, 0, n+2)
	rec = append(rec, "round", "task")
	rec = appendTaskHeader(rec, n)
	if err := cw.Write(rec); err != nil {
		return fmt.Errorf("results: write curves csv: %w", err)
	}
	for _, c := range curves {
		rec = append(rec[:0], strconv.Itoa(c.Round), strconv.Itoa(c.Task))
		rec = appendValues(rec, c.Acc, n)
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("results: write curves csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("results: write curves csv: %w", err)
	}
	return nil
}

func appendTaskHeader(dst []string, n int) []string {
	for j := range n {
		dst = append(dst, "task"+strconv.Itoa(j))
	}
	return dst
}

func appendValues(dst []string, row []float64, n int) []string {
	for j := range n {
		s := ""
		if j < len(row) && !math.IsNaN(row[j]) && !math.IsInf(row[j], 0) {
			s = strconv.FormatFloat(row[j], 'g', -1, 64)
		}
		dst = append(dst, s)
	}
	return dst
}

// tableWidth is the number of task columns to show for rec: the declared
// task count or the widest matrix row, whichever is larger.
func tableWidth(rec *Record) int {
	return max(rec.Tasks, rec.AccMatrix.Cols())
}

package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestRecordMirrorsWire keeps recordJSON in step with Record: same fields,
// same order, same JSON tags.
func TestRecordMirrorsWire(t *testing.T) {
	rt, wt := reflect.TypeFor[Record](), reflect.TypeFor[recordJSON]()
	if rt.NumField() != wt.NumField() {
		t.Fatalf("Record has %d fields, recordJSON %d: add the new field to both and to the conversions", rt.NumField(), wt.NumField())
	}
	for i := range rt.NumField() {
		rf, wf := rt.Field(i), wt.Field(i)
		if rf.Name != wf.Name || rf.Tag.Get("json") != wf.Tag.Get("json") {
			t.Errorf("field %d: Record has %s %q, recordJSON has %s %q", i, rf.Name, rf.Tag.Get("json"), wf.Name, wf.Tag.Get("json"))
		}
	}
}

// TestRecordContract pins the JSON keys of the public record, in order.
func TestRecordContract(t *testing.T) {
	want := []string{"schema", "scenario", "method", "seed", "tasks", "acc_matrix", "acc", "fgt", "bwt",
		"rounds", "clients", "clients_per_round", "bytes_up", "bytes_down", "wall_seconds", "curves",
		"max_fgt", "method_label", "dataset", "stream", "backend", "rejected_updates", "late_updates",
		"tasks_detail", "fotsim_version", "trainable_params", "pretrain_tasks", "finetune_acc"}
	b, err := json.Marshal(Record{})
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var got []string
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys:\ngot  %v\nwant %v", got, want)
	}
}

func TestZeroRecordJSON(t *testing.T) {
	b, err := json.Marshal(Record{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"schema":"fotsim.result/v1"`, `"acc_matrix":[]`, `"curves":[]`, `"tasks_detail":[]`, `"acc":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("zero record JSON %s: missing %s", b, want)
		}
	}
}

func TestNaNBecomesNull(t *testing.T) {
	r := Record{ACC: math.NaN(), FGT: math.Inf(1), BWT: math.Inf(-1), MaxFGT: math.NaN(), WallSeconds: math.NaN(),
		AccMatrix:   Matrix{{math.NaN(), 1.5}},
		Curves:      []Curve{{Acc: []float64{math.NaN()}}},
		TasksDetail: []TaskDetail{{TrainLoss: math.NaN(), ProjectedFraction: map[string]float64{"a": math.NaN()}}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	s := string(b)
	for _, want := range []string{`"acc":null`, `"fgt":null`, `"bwt":null`, `"max_fgt":null`, `"wall_seconds":null`,
		`"acc_matrix":[[null,1.5]]`, `"acc":[null]`, `"train_loss":null`, `"projected_fraction":{"a":null}`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON %s: missing %s", s, want)
		}
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	for name, v := range map[string]float64{"acc": back.ACC, "fgt": back.FGT, "matrix[0][0]": back.AccMatrix[0][0],
		"curve": back.Curves[0].Acc[0], "train_loss": back.TasksDetail[0].TrainLoss,
		"projected_fraction": back.TasksDetail[0].ProjectedFraction["a"]} {
		if !math.IsNaN(v) {
			t.Errorf("%s: got %v, want NaN", name, v)
		}
	}
	if got := back.AccMatrix[0][1]; got != 1.5 {
		t.Errorf("matrix[0][1]: got %v, want 1.5", got)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rec := sampleRecord()
	// Every field set, so a field forgotten in a conversion shows up.
	v := reflect.ValueOf(*rec)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("sampleRecord leaves %s zero", v.Type().Field(i).Name)
		}
	}
	var b1 bytes.Buffer
	if err := WriteRecord(&b1, rec); err != nil {
		t.Fatalf("WriteRecord: %v", err)
	}
	back, err := DecodeRecord(b1.Bytes())
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	// %#v prints NaN as NaN and maps sorted, so it compares NaN-aware
	// (the DP pointer is compared by value).
	if back.DP == nil || !reflect.DeepEqual(*back.DP, *rec.DP) {
		t.Errorf("round trip: dp %+v, want %+v", back.DP, rec.DP)
	}
	if back.System == nil || *back.System != *rec.System {
		t.Errorf("round trip: system %+v, want %+v", back.System, rec.System)
	}
	noDP := func(r Record) Record { r.DP, r.System = nil, nil; return r }
	if got, want := fmt.Sprintf("%#v", noDP(*back)), fmt.Sprintf("%#v", noDP(*rec)); got != want {
		t.Errorf("round trip:\ngot  %s\nwant %s", got, want)
	}
	var b2 bytes.Buffer
	if err := WriteRecord(&b2, back); err != nil {
		t.Fatalf("WriteRecord: %v", err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Errorf("re-encoding changed the bytes:\n%s\nvs\n%s", b1.Bytes(), b2.Bytes())
	}
}

// TestWriteRecordDeterministic encodes the same record many times (map
// iteration order differs between runs) and wants identical bytes.
func TestWriteRecordDeterministic(t *testing.T) {
	var first []byte
	for i := range 20 {
		var b bytes.Buffer
		if err := WriteRecord(&b, sampleRecord()); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b.Bytes()
			continue
		}
		if !bytes.Equal(b.Bytes(), first) {
			t.Fatalf("encoding %d differs from the first", i)
		}
	}
	if first[len(first)-1] != '\n' {
		t.Errorf("record does not end with a newline")
	}
	golden(t, "result.json.golden", first)
}

func TestDecodeRecordErrors(t *testing.T) {
	tests := []struct {
		name, data string
		schema     bool // want ErrSchema
	}{
		{"wrong schema", `{"schema":"fotsim.result/v2"}`, true},
		{"missing schema", `{"method":"fot"}`, true},
		{"not json", `{"schema":`, false},
		{"wrong type", `{"schema":"fotsim.result/v1","acc_matrix":"x"}`, false},
	}
	for _, tc := range tests {
		_, err := DecodeRecord([]byte(tc.data))
		if err == nil {
			t.Errorf("%s: got no error", tc.name)
			continue
		}
		if got := errors.Is(err, ErrSchema); got != tc.schema {
			t.Errorf("%s: errors.Is(%v, ErrSchema) = %v, want %v", tc.name, err, got, tc.schema)
		}
	}
}

func TestDecodeRecordIgnoresUnknownFields(t *testing.T) {
	rec, err := DecodeRecord([]byte(`{"schema":"fotsim.result/v1","method":"fot","added_in_v1_5":{"x":1}}`))
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if rec.Method != "fot" {
		t.Errorf("method: got %q, want %q", rec.Method, "fot")
	}
}

func TestWriteRecordNil(t *testing.T) {
	if err := WriteRecord(&bytes.Buffer{}, nil); !errors.Is(err, ErrNilRecord) {
		t.Errorf("got %v, want ErrNilRecord", err)
	}
}

func BenchmarkWriteRecord(b *testing.B) {
	rec := sampleRecord()
	rec.AccMatrix = benchMatrix(10)
	rec.FillMetrics()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteRecord(&buf, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/record")
}

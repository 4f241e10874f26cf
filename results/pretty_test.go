package results

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestPrettyJSONKeepsContent checks that re-indenting only adds whitespace:
// compacting the output gives back the input byte for byte.
func TestPrettyJSONKeepsContent(t *testing.T) {
	rec := sampleRecord()
	rec.MethodLabel = "FOT <eps=0.96> & \"quoted\" ±, [x]: {y}"
	inputs := []string{
		`{}`, `[]`, `null`, `1e-07`, `"a b"`, `[[],{}]`, `{"a":{"b":{"c":[1,2,{"d":true}]}},"e":false}`,
	}
	full, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs, string(full))
	for _, in := range inputs {
		out, err := prettyJSON([]byte(in))
		if err != nil {
			t.Errorf("prettyJSON(%s): %v", in, err)
			continue
		}
		var c bytes.Buffer
		if err := json.Compact(&c, out); err != nil {
			t.Errorf("prettyJSON(%s) is not valid JSON: %v\n%s", in, err, out)
			continue
		}
		if got := c.String(); got != in {
			t.Errorf("compact(prettyJSON(x)) != x:\ngot  %s\nwant %s", got, in)
		}
	}
}

func TestPrettyJSONRejectsGarbage(t *testing.T) {
	for _, in := range []string{``, `{`, `[1,`, `{"a"}`} {
		if _, err := prettyJSON([]byte(in)); err == nil {
			t.Errorf("prettyJSON(%q): got no error", in)
		}
	}
}

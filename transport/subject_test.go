package transport

import (
	"strings"
	"testing"
)

func TestSubjectsFor(t *testing.T) {
	long := strings.Repeat("r", 70)
	tests := []struct {
		run, wantToken string
	}{
		{"run-1", "run-1"},
		{"Exp_2024", "Exp_2024"},
		{"", "default"},
		{"a.b", "a_b-" + hash("a.b")},
		{"a b", "a_b-" + hash("a b")},
		{"a*>", "a__-" + hash("a*>")},
		{"ünï", "__n__-" + hash("ünï")},
		{strings.Repeat("r", 64), strings.Repeat("r", 64)},
		{long, strings.Repeat("r", 64) + "-" + hash(long)},
	}
	for _, tc := range tests {
		s := SubjectsFor(tc.run)
		if want := "fotsim." + tc.wantToken + ".round"; s.Round != want {
			t.Fatalf("SubjectsFor(%q).Round: got %q, want %q", tc.run, s.Round, want)
		}
		if want := "fotsim." + tc.wantToken + ".update"; s.Update != want {
			t.Fatalf("SubjectsFor(%q).Update: got %q, want %q", tc.run, s.Update, want)
		}
		if want := "fotsim." + tc.wantToken + ".metrics"; s.Metrics != want {
			t.Fatalf("SubjectsFor(%q).Metrics: got %q, want %q", tc.run, s.Metrics, want)
		}
		if want := "fotsim." + tc.wantToken + ".hosts"; s.Hosts != want {
			t.Fatalf("SubjectsFor(%q).Hosts: got %q, want %q", tc.run, s.Hosts, want)
		}
		if want := "fotsim." + tc.wantToken + ".join"; s.Join != want {
			t.Fatalf("SubjectsFor(%q).Join: got %q, want %q", tc.run, s.Join, want)
		}
		if subjectMatches(AnnounceSubject, s.Round) || subjectMatches(MetricsWildcard, AnnounceSubject) {
			t.Fatalf("AnnounceSubject %q must match no run subject and not MetricsWildcard", AnnounceSubject)
		}
		if !subjectMatches(MetricsWildcard, s.Metrics) || subjectMatches(MetricsWildcard, s.Round) || subjectMatches(MetricsWildcard, s.Update) {
			t.Fatalf("MetricsWildcard %q must match %q and neither %q nor %q", MetricsWildcard, s.Metrics, s.Round, s.Update)
		}
	}
	// Ids that sanitise alike still differ.
	seen := map[string]string{}
	for _, run := range []string{"a.b", "a_b", "a b", "a>b", "a*b"} {
		tok := RunToken(run)
		if other, ok := seen[tok]; ok {
			t.Fatalf("RunToken(%q) == RunToken(%q) == %q", run, other, tok)
		}
		seen[tok] = run
		for i := 0; i < len(tok); i++ {
			if !tokenByte(tok[i]) {
				t.Fatalf("RunToken(%q) = %q has unsafe byte %q", run, tok, tok[i])
			}
		}
	}
}

func hash(s string) string {
	tok := RunToken(s)
	return tok[strings.LastIndexByte(tok, '-')+1:]
}

// subjectMatches reports whether the NATS subject pattern (tokens and '*')
// matches subject.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	if len(p) != len(s) {
		return false
	}
	for i := range p {
		if p[i] != "*" && p[i] != s[i] {
			return false
		}
	}
	return true
}

package scenarios

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
)

// fill applies the defaults that depend on other keys or on the machine; present says
// which key paths the YAML (or a --set) gave.
func (s *Scenario) fill(present func(string) bool) {
	if s.Name == "" {
		s.Name = defaultName(s.Source)
	}
	if norm, ok := datasetNorm[s.Data.Dataset]; ok {
		if !present("data.mean") {
			s.Data.Mean = norm[0]
		}
		if !present("data.std") {
			s.Data.Std = norm[1]
		}
	}
	if !present("model.dropout") {
		s.Model.Dropout = make([]float64, len(s.Model.Hidden))
	}
	if !present("model.conv") && s.Model.Arch == "cnn" {
		s.Model.Conv = defaultConv()
	}
	for i := range s.Model.Conv {
		p := fmt.Sprintf("model.conv[%d]", i)
		if !present(p) {
			continue
		}
		if !present(p + ".stride") {
			s.Model.Conv[i].Stride = 1
		}
		if !present(p + ".pool") {
			s.Model.Conv[i].Pool = 1
		}
	}
	if s.Train.Workers == 0 {
		s.Train.Workers = runtime.NumCPU()
	}
}

// defaultName derives a scenario name from its source: the built-in name, or the file
// name without directory and extension.
func defaultName(source string) string {
	if name, ok := strings.CutPrefix(source, builtinPrefix); ok {
		return name
	}
	base := filepath.Base(source)
	if base == "." || base == string(filepath.Separator) {
		return ""
	}
	return strings.TrimSuffix(base, filepath.Ext(base))
}

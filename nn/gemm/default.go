package gemm

import "os"

// Default returns the backend named by the FOTSIM_BACKEND environment
// variable when it is set and known, otherwise the fastest compiled-in
// backend that needs no set-up.
func Default() Backend {
	if name := os.Getenv("FOTSIM_BACKEND"); name != "" {
		if b, err := Lookup(name); err == nil {
			return b
		}
	}
	for _, name := range preference {
		if b, err := Lookup(name); err == nil {
			return b
		}
	}
	return Gonum{}
}

//go:build amd64 && !purego

package nn

import "testing"

// Without AVX-512 the written-out generator alone gives the same.
func TestDropoutMaskScalarPCGMatchesSource(t *testing.T) {
	if !dropoutAVX512 {
		t.Skip("no AVX-512: the default test already ran the scalar generator")
	}
	dropoutAVX512 = false
	defer func() { dropoutAVX512 = true }()
	checkDropoutMatchesRef(t, "scalar")
}

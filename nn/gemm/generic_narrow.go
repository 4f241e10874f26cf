//go:build amd64 || 386

package gemm

// fewFPRegs selects the generic 4x4 kernel that fits 16 registers: amd64
// and 386 have at most 16 floating-point registers.
const fewFPRegs = true

//go:build !amd64 && !386

package gemm

// fewFPRegs selects the generic 4x4 kernel that fits 16 registers.
const fewFPRegs = false

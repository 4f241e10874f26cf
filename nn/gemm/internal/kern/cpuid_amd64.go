//go:build amd64 && !purego

package kern

// CPUID executes the CPUID instruction with leaf eaxArg and subleaf
// ecxArg and returns its four result registers. Package gemm reads the
// CPU's vendor, brand string and cache sizes with it.
//
//go:noescape
func CPUID(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

//go:build !amd64 || purego

package gemm

// cpuidInfo is empty without CPUID: CPUInfo reads procfs and sysfs.
func cpuidInfo() CPU { return CPU{} }

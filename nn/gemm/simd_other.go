//go:build !amd64 || purego

package gemm

// levels lists the kernel levels usable here, best first.
func levels() []*level { return []*level{genericLevel} }

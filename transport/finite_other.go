//go:build !amd64 || purego

package transport

const hasAVX2 = false

func anyNonFiniteAVX2(p *float32, n int) bool { panic("transport: no AVX2 scan on this platform") }

//go:build amd64 && !purego

package gemm

import (
	"encoding/binary"
	"strings"

	"github.com/fotsim/fotsim/nn/gemm/internal/kern"
)

// cpuidInfo reads the vendor, brand string, family/model/stepping and the
// cache sizes with CPUID: the deterministic cache parameters of leaf 4
// (Intel) or 0x8000001D (AMD), else AMD's legacy leaves 0x80000005/6.
func cpuidInfo() CPU {
	var c CPU
	maxLeaf, b, cx, d := kern.CPUID(0, 0)
	var v [12]byte
	binary.LittleEndian.PutUint32(v[0:], b)
	binary.LittleEndian.PutUint32(v[4:], d)
	binary.LittleEndian.PutUint32(v[8:], cx)
	c.Vendor = strings.TrimRight(string(v[:]), "\x00")
	c.Source = "cpuid"
	if maxLeaf >= 1 {
		a, _, _, _ := kern.CPUID(1, 0)
		fam, mod := int(a>>8&0xf), int(a>>4&0xf)
		if fam == 0xf {
			fam += int(a >> 20 & 0xff)
		}
		if fam == 0x6 || fam >= 0xf {
			mod += int(a>>16&0xf) << 4
		}
		c.Family, c.ModelID, c.Stepping = fam, mod, int(a&0xf)
	}
	maxExt, _, _, _ := kern.CPUID(0x80000000, 0)
	if maxExt >= 0x80000004 {
		var brand [48]byte
		for i := uint32(0); i < 3; i++ {
			a, b, cx, d := kern.CPUID(0x80000002+i, 0)
			for j, r := range []uint32{a, b, cx, d} {
				binary.LittleEndian.PutUint32(brand[16*i+4*uint32(j):], r)
			}
		}
		c.Model = strings.Join(strings.Fields(strings.TrimRight(string(brand[:]), "\x00")), " ")
	}
	// Deterministic cache parameters: one subleaf per cache until type 0.
	leaf := uint32(0)
	switch {
	case c.Vendor == "GenuineIntel" && maxLeaf >= 4:
		leaf = 4
	case c.Vendor == "AuthenticAMD" && maxExt >= 0x8000001d:
		leaf = 0x8000001d
	}
	if leaf != 0 {
		for sub := uint32(0); sub < 16; sub++ {
			a, b, cx, _ := kern.CPUID(leaf, sub)
			typ := a & 0x1f // 1 data, 2 instruction, 3 unified
			if typ == 0 {
				break
			}
			if typ == 2 {
				continue
			}
			ways, parts, line, sets := int(b>>22)+1, int(b>>12&0x3ff)+1, int(b&0xfff)+1, int(cx)+1
			size := ways * parts * line * sets
			switch a >> 5 & 0x7 {
			case 1:
				c.L1DBytes = size
			case 2:
				c.L2Bytes = size
			case 3:
				c.L3Bytes = size
			}
		}
	}
	if c.Vendor == "AuthenticAMD" && c.L1DBytes == 0 && maxExt >= 0x80000006 {
		_, _, l1, _ := kern.CPUID(0x80000005, 0)
		_, _, l2, l3 := kern.CPUID(0x80000006, 0)
		c.L1DBytes = int(l1>>24) << 10
		c.L2Bytes = int(l2>>16) << 10
		c.L3Bytes = int(l3>>18) * 512 << 10
	}
	return c
}

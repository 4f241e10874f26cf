package gemm

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// CPU identifies the processor the simd backend tunes its blocking for.
// Fields that could not be read are zero or empty.
type CPU struct {
	Arch     string `json:"arch"`      // runtime.GOARCH
	Vendor   string `json:"vendor"`    // e.g. "AuthenticAMD", "GenuineIntel"
	Model    string `json:"model"`     // brand string, e.g. "AMD EPYC 9R14 96-Core Processor"
	Family   int    `json:"family"`    // x86 display family
	ModelID  int    `json:"model_id"`  // x86 display model
	Stepping int    `json:"stepping"`  // x86 stepping
	L1DBytes int    `json:"l1d_bytes"` // level-1 data cache of one core
	L2Bytes  int    `json:"l2_bytes"`  // level-2 cache of one core (or its cluster)
	L3Bytes  int    `json:"l3_bytes"`  // last-level cache as the CPU reports it
	Source   string `json:"source"`    // where the fields came from: "cpuid", "sysfs", ...
}

// String is a one-line description, e.g.
// "AuthenticAMD AMD EPYC 9R14 (family 25 model 17), L1d 32 KiB, L2 1 MiB, L3 32 MiB".
func (c CPU) String() string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(c.Vendor + " " + c.Model))
	if b.Len() == 0 {
		b.WriteString("unknown " + c.Arch + " CPU")
	}
	if c.Family != 0 || c.ModelID != 0 {
		fmt.Fprintf(&b, " (family %d model %d stepping %d)", c.Family, c.ModelID, c.Stepping)
	}
	for _, x := range []struct {
		name string
		n    int
	}{{"L1d", c.L1DBytes}, {"L2", c.L2Bytes}, {"L3", c.L3Bytes}} {
		if x.n > 0 {
			fmt.Fprintf(&b, ", %s %s", x.name, sizeString(x.n))
		}
	}
	return b.String()
}

func sizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// CPUInfo describes this machine's CPU: from CPUID on amd64, completed (or,
// elsewhere, read) from Linux's /proc/cpuinfo and
// /sys/devices/system/cpu/cpu0/cache. It is read once.
var CPUInfo = sync.OnceValue(func() CPU {
	c := cpuidInfo()
	c.Arch = runtime.GOARCH
	if c.Model == "" || c.Vendor == "" {
		if fillProcCPUInfo(&c, "/proc/cpuinfo") && c.Source == "" {
			c.Source = "procfs"
		}
	}
	if c.L1DBytes == 0 || c.L2Bytes == 0 {
		if fillSysfsCaches(&c, "/sys/devices/system/cpu/cpu0/cache") && c.Source == "" {
			c.Source = "sysfs"
		}
	}
	if c.Source == "" {
		c.Source = "none"
	}
	return c
})

// fillProcCPUInfo sets the vendor and model of c, when empty, from the
// first processor of a /proc/cpuinfo file, and reports whether it found any.
func fillProcCPUInfo(c *CPU, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if strings.TrimSpace(sc.Text()) == "" && found {
				break // end of the first processor
			}
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "vendor_id", "CPU implementer":
			if c.Vendor == "" {
				c.Vendor, found = v, true
			}
		case "model name", "cpu model", "Model":
			if c.Model == "" {
				c.Model, found = v, true
			}
		}
	}
	return found
}

// fillSysfsCaches sets the cache sizes of c that are zero from a Linux
// cache directory (index*/level, type, size), and reports whether it found any.
func fillSysfsCaches(c *CPU, dir string) bool {
	idx, _ := filepath.Glob(filepath.Join(dir, "index*"))
	found := false
	for _, d := range idx {
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(d, name))
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		level, _ := strconv.Atoi(read("level"))
		typ := read("type")
		size := parseCacheSize(read("size"))
		if size <= 0 || typ == "Instruction" {
			continue
		}
		var dst *int
		switch level {
		case 1:
			dst = &c.L1DBytes
		case 2:
			dst = &c.L2Bytes
		case 3:
			dst = &c.L3Bytes
		default:
			continue
		}
		if *dst == 0 {
			*dst, found = size, true
		}
	}
	return found
}

// parseCacheSize parses sysfs sizes such as "32K", "1024K" or "32M".
func parseCacheSize(s string) int {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n * mult
}

package gemm

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCPUInfo(t *testing.T) {
	c := CPUInfo()
	t.Logf("%s (source %s)", c, c.Source)
	if c.Arch == "" || c.Source == "" || c.String() == "" {
		t.Errorf("CPUInfo() = %+v: empty arch, source or description", c)
	}
}

func TestCPUInfoFiles(t *testing.T) {
	dir := t.TempDir()
	cpuinfo := filepath.Join(dir, "cpuinfo")
	os.WriteFile(cpuinfo, []byte("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n\nprocessor\t: 1\nmodel name\t: other\n"), 0o644)
	for i, c := range []struct{ level, typ, size string }{{"1", "Data", "48K"}, {"1", "Instruction", "32K"}, {"2", "Unified", "1280K"}, {"3", "Unified", "54M"}} {
		d := filepath.Join(dir, "cache", "index"+string(rune('0'+i)))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "level"), []byte(c.level+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "type"), []byte(c.typ+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "size"), []byte(c.size+"\n"), 0o644)
	}
	var c CPU
	if !fillProcCPUInfo(&c, cpuinfo) || !fillSysfsCaches(&c, filepath.Join(dir, "cache")) {
		t.Fatal("nothing found")
	}
	want := CPU{Vendor: "GenuineIntel", Model: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", L1DBytes: 48 << 10, L2Bytes: 1280 << 10, L3Bytes: 54 << 20}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got, want := c.String(), "GenuineIntel Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz, L1d 48 KiB, L2 1280 KiB, L3 54 MiB"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

package nn

import (
	"sync"

	"github.com/fotsim/fotsim/nn/gemm"
)

// active is the process-wide backend registry entry that NewWorkspace reads.
var active struct {
	sync.Mutex
	b gemm.Backend
}

// SetBackend makes b the backend of every Workspace created afterwards;
// existing workspaces keep the backend they captured. A nil b restores
// gemm.Default().
func SetBackend(b gemm.Backend) {
	active.Lock()
	defer active.Unlock()
	active.b = b
}

// ActiveBackend returns the backend NewWorkspace would capture now:
// the last one passed to SetBackend, or gemm.Default().
func ActiveBackend() gemm.Backend {
	active.Lock()
	defer active.Unlock()
	if active.b == nil {
		active.b = gemm.Default()
	}
	return active.b
}

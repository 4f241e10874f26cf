package dp

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// accountantState is the saved form of an Accountant.
type accountantState struct {
	Orders, RDP []float64
	Steps       int
}

// GobEncode saves a exactly (for checkpoints).
func (a *Accountant) GobEncode() ([]byte, error) {
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(accountantState{Orders: a.orders, RDP: a.rdp, Steps: a.steps})
	return buf.Bytes(), err
}

// GobDecode restores an accountant saved by GobEncode.
func (a *Accountant) GobDecode(data []byte) error {
	var s accountantState
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return fmt.Errorf("dp: saved accountant: %w", err)
	}
	if err := checkOrders(s.Orders); err != nil {
		return err
	}
	if len(s.RDP) != len(s.Orders) || s.Steps < 0 {
		return fmt.Errorf("dp: saved accountant has %d RDP values for %d orders and %d steps", len(s.RDP), len(s.Orders), s.Steps)
	}
	*a = Accountant{orders: s.Orders, rdp: s.RDP, steps: s.Steps}
	return nil
}

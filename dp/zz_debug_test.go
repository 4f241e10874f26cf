package dp

import (
	"fmt"
	"testing"
	"time"
)

func TestZZDebug(t *testing.T) {
	for _, c := range []struct{ q, s float64 }{{256.0 / 60000, 1.1}, {0.01, 1}, {0.5, 1}, {0.99, 1}, {0.001, 5}, {0.1, 0.5}, {0.04, 20}} {
		var tot time.Duration
		worst, wo := time.Duration(0), 0.0
		for _, a := range defaultOrders {
			t0 := time.Now()
			for range 10 {
				rdpStep(c.q, c.s, a)
			}
			d := time.Since(t0) / 10
			tot += d
			if d > worst {
				worst, wo = d, a
			}
		}
		fmt.Printf("q=%g s=%g total %v worst %v at %g\n", c.q, c.s, tot, worst, wo)
	}
}

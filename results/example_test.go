package results_test

import (
	"fmt"
	"math"

	"github.com/fotsim/fotsim/results"
)

// Three tasks. Task 0 peaks at 88% after task 1, so max-based forgetting
// (Chaudhry) is larger than the FOT paper's FGT, which measures from the
// accuracy right after each task was learnt.
func ExampleFGT() {
	nan := math.NaN() // not evaluated
	m := results.Matrix{
		{80, nan, nan}, // after task 0
		{88, 90, nan},  // after task 1
		{70, 85, 92},   // after task 2
	}
	fmt.Printf("ACC    = %.2f\n", results.ACC(m))    // (70+85+92)/3
	fmt.Printf("FGT    = %.2f\n", results.FGT(m))    // ((80-70)+(90-85))/2
	fmt.Printf("BWT    = %.2f\n", results.BWT(m))    // -FGT
	fmt.Printf("MaxFGT = %.2f\n", results.MaxFGT(m)) // ((88-70)+(90-85))/2
	// Output:
	// ACC    = 82.33
	// FGT    = 7.50
	// BWT    = -7.50
	// MaxFGT = 11.50
}

func ExampleMeanStd() {
	mean, std := results.MeanStd([]float64{85.1, 86.2, 85.74})
	fmt.Printf("%.2f +- %.2f\n", mean, std)
	// Output:
	// 85.68 +- 0.55
}

func ExampleHumanBytes() {
	fmt.Println(results.HumanBytes(512), results.HumanBytes(1536), results.HumanBytes(123456789))
	// Output:
	// 512 B 1.5 KiB 117.7 MiB
}

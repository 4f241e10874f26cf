package data

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/fotsim/fotsim/rng"
)

// SyntheticConfig describes a generated classification problem that needs no
// files: Classes smooth random "images" of Shape serve as class centres, and
// each sample is its class centre plus Gaussian noise.
type SyntheticConfig struct {
	Train, Test int     // samples in each set
	Shape       [3]int  // C, H, W of one sample
	Classes     int     // number of classes
	Noise       float64 // noise std relative to the (unit RMS) class centres
}

// DefaultSyntheticConfig returns a small problem that a linear model learns
// to roughly 80-90% test accuracy: 10 classes of 1x8x8 images.
func DefaultSyntheticConfig() SyntheticConfig {
	return SyntheticConfig{Train: 2000, Test: 500, Shape: [3]int{1, 8, 8}, Classes: 10, Noise: 3}
}

// withDefaults fills zero fields from DefaultSyntheticConfig.
func (c SyntheticConfig) withDefaults() SyntheticConfig {
	d := DefaultSyntheticConfig()
	if c.Train == 0 {
		c.Train = d.Train
	}
	if c.Test == 0 {
		c.Test = d.Test
	}
	if c.Shape == [3]int{} {
		c.Shape = d.Shape
	}
	if c.Classes == 0 {
		c.Classes = d.Classes
	}
	if c.Noise == 0 {
		c.Noise = d.Noise
	}
	return c
}

// Validate reports a configuration that Synthetic cannot generate. Zero
// fields are valid: they take the defaults.
func (c SyntheticConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Train < 0 || c.Test < 0:
		return fmt.Errorf("data: synthetic: train %d, test %d: want >= 0", c.Train, c.Test)
	case c.Shape[0] < 1 || c.Shape[1] < 1 || c.Shape[2] < 1:
		return fmt.Errorf("data: synthetic: shape %v: want all dimensions >= 1", c.Shape)
	case c.Classes < 1:
		return fmt.Errorf("data: synthetic: classes %d: want >= 1", c.Classes)
	case !(c.Noise > 0) || math.IsInf(c.Noise, 0):
		return fmt.Errorf("data: synthetic: noise %v: want a finite value > 0", c.Noise)
	}
	return nil
}

// Synthetic generates a train and a test set, deterministically from seed.
// Zero fields of cfg take the values of DefaultSyntheticConfig; an invalid
// cfg (see Validate) is a programmer error and panics.
//
// Class k has a centre c_k: a Gaussian random field smoothed by a 3x3 box
// filter (per channel) and scaled to unit RMS, so that rotations and pixel
// permutations change the data the way they change real images. A sample of
// class k is
//
//	x = (c_k + Noise*z) / sqrt(1 + Noise^2),   z ~ N(0, I)
//
// so every feature has roughly zero mean and unit variance. Labels are
// exactly balanced (sample i of the unshuffled set has label i mod Classes)
// and then shuffled. Larger Noise or fewer pixels make the task harder.
func Synthetic(cfg SyntheticConfig, seed uint64) (train, test *Dataset) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	centres := syntheticCentres(cfg, rng.New(seed, "synthetic-centres"))
	train = syntheticSet(cfg, "synthetic-train", cfg.Train, centres, rng.New(seed, "synthetic-train"))
	test = syntheticSet(cfg, "synthetic-test", cfg.Test, centres, rng.New(seed, "synthetic-test"))
	return train, test
}

// syntheticCentres draws Classes smoothed, unit-RMS centres.
func syntheticCentres(cfg SyntheticConfig, r *rand.Rand) [][]float64 {
	c, h, w := cfg.Shape[0], cfg.Shape[1], cfg.Shape[2]
	dim := c * h * w
	centres := make([][]float64, cfg.Classes)
	z := make([]float64, h*w)
	for k := range centres {
		cen := make([]float64, dim)
		for ch := 0; ch < c; ch++ {
			for i := range z {
				z[i] = r.NormFloat64()
			}
			out := cen[ch*h*w : (ch+1)*h*w]
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					s, n := 0.0, 0
					for dy := -1; dy <= 1; dy++ {
						for dx := -1; dx <= 1; dx++ {
							yy, xx := y+dy, x+dx
							if yy >= 0 && yy < h && xx >= 0 && xx < w {
								s += z[yy*w+xx]
								n++
							}
						}
					}
					out[y*w+x] = s / float64(n)
				}
			}
		}
		ss := 0.0
		for _, v := range cen {
			ss += v * v
		}
		if rms := math.Sqrt(ss / float64(dim)); rms > 0 {
			for i := range cen {
				cen[i] /= rms
			}
		}
		centres[k] = cen
	}
	return centres
}

func syntheticSet(cfg SyntheticConfig, name string, n int, centres [][]float64, r *rand.Rand) *Dataset {
	dim := cfg.Shape[0] * cfg.Shape[1] * cfg.Shape[2]
	d := &Dataset{
		Name:    name,
		X:       make([]float32, n*dim),
		Y:       make([]int32, n),
		Shape:   cfg.Shape,
		Classes: cfg.Classes,
	}
	for i := range d.Y {
		d.Y[i] = int32(i % cfg.Classes)
	}
	r.Shuffle(n, func(i, j int) { d.Y[i], d.Y[j] = d.Y[j], d.Y[i] })
	scale := 1 / math.Sqrt(1+cfg.Noise*cfg.Noise)
	for i, y := range d.Y {
		c := centres[y]
		row := d.X[i*dim : (i+1)*dim]
		for j := range row {
			row[j] = float32((c[j] + cfg.Noise*r.NormFloat64()) * scale)
		}
	}
	return d
}

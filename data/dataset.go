package data

import "fmt"

// Dataset is a labelled image set held in memory as float32, one row per
// sample. It is read-only once built: views, tasks and partitions share it.
type Dataset struct {
	Name    string
	X       []float32 // Len() x Dim() row-major, already normalised
	Y       []int32   // labels in [0, Classes)
	Shape   [3]int    // C, H, W of one sample
	Classes int       // number of distinct labels

	// Background is the value a blank (zero) pixel takes after
	// normalisation. Rotation fills the pixels it uncovers with it, so a
	// rotated MNIST digit keeps a uniform background. Synthetic data uses 0.
	Background float32
}

// Len returns the number of samples.
func (d *Dataset) Len() int { return len(d.Y) }

// Dim returns the number of features of one sample, C*H*W.
func (d *Dataset) Dim() int { return d.Shape[0] * d.Shape[1] * d.Shape[2] }

// check reports whether the dataset is internally consistent.
func (d *Dataset) check() error {
	if d == nil {
		return fmt.Errorf("nil dataset")
	}
	if d.Shape[0] < 1 || d.Shape[1] < 1 || d.Shape[2] < 1 {
		return fmt.Errorf("dataset %q: shape %v has a non-positive dimension", d.Name, d.Shape)
	}
	if len(d.X) != d.Len()*d.Dim() {
		return fmt.Errorf("dataset %q: len(X) = %d, want Len()*Dim() = %d*%d", d.Name, len(d.X), d.Len(), d.Dim())
	}
	if d.Classes < 1 {
		return fmt.Errorf("dataset %q: Classes = %d, want >= 1", d.Name, d.Classes)
	}
	return nil
}

// Norm is the per-pixel normalisation applied when an image file is loaded:
//
//	x = (pixel/255 - Mean) / Std
//
// A zero Std means no normalisation: x = pixel/255, in [0, 1], and Mean is
// ignored.
type Norm struct{ Mean, Std float32 }

// Normalisation constants of the training sets, as used by the FOT paper
// (MNIST) and the Fashion-MNIST authors.
const (
	MNISTMean        = 0.1307
	MNISTStd         = 0.3081
	FashionMNISTMean = 0.2860
	FashionMNISTStd  = 0.3530
)

// Apply returns the normalised value of one 8-bit pixel.
func (n Norm) Apply(pixel uint8) float32 {
	x := float64(pixel) / 255
	if n.Std == 0 {
		return float32(x)
	}
	return float32((x - float64(n.Mean)) / float64(n.Std))
}

// table returns Apply for all 256 pixel values.
func (n Norm) table() *[256]float32 {
	var t [256]float32
	for p := range t {
		t[p] = n.Apply(uint8(p))
	}
	return &t
}

// View is a lazy, read-only selection of a Dataset: a subset of rows, a fixed
// permutation of the pixels and a remapping of the labels. Views are cheap
// values; the slices they hold are shared and must not be modified.
//
// The contract named the label remap field Label, but Go forbids a field and
// a method of the same name, so the field is LabelMap and Label is the method.
type View struct {
	Base     *Dataset
	Idx      []int32 // rows of Base in view order; nil = all rows
	Perm     []int32 // pixel permutation: view pixel j = base pixel Perm[j]; nil = identity
	LabelMap []int32 // view label = LabelMap[base label]; nil = identity
}

// Len returns the number of rows of the view.
func (v View) Len() int {
	if v.Idx == nil {
		return v.Base.Len()
	}
	return len(v.Idx)
}

// Row returns the Base row behind view row i.
func (v View) Row(i int) int {
	if v.Idx == nil {
		return i
	}
	return int(v.Idx[i])
}

// Label returns the (remapped) label of view row i.
func (v View) Label(i int) int32 {
	y := v.Base.Y[v.Row(i)]
	if v.LabelMap != nil {
		return v.LabelMap[y]
	}
	return y
}

// permute sets dst[j] = src[perm[j]] for every j of perm, four at a time.
func permute(dst, src []float32, perm []int32) {
	dst = dst[:len(perm)]
	j := 0
	for ; j+4 <= len(perm); j += 4 {
		q, d := perm[j:j+4:j+4], dst[j:j+4:j+4]
		d[0], d[1], d[2], d[3] = src[q[0]], src[q[1]], src[q[2]], src[q[3]]
	}
	for ; j < len(perm); j++ {
		dst[j] = src[perm[j]]
	}
}

// Gather copies view rows into dense buffers: for each k, rows[k] indexes the
// view; its Base row is Idx[rows[k]], its pixels are permuted (dst pixel j =
// src pixel Perm[j]) and its label remapped through LabelMap.
//
//	dstX[k*Dim + j] = Base.X[Idx[rows[k]]*Dim + Perm[j]]
//	dstY[k]         = LabelMap[Base.Y[Idx[rows[k]]]]
//
// dstX must hold at least len(rows)*Dim values and dstY at least len(rows);
// either may be nil to skip it. It allocates nothing. A short destination
// or a row out of range is a programmer error and panics.
func (v View) Gather(dstX []float32, dstY []int32, rows []int32) {
	d := v.Base
	dim := d.Dim()
	if dstX != nil && len(dstX) < len(rows)*dim {
		panic(fmt.Sprintf("data: Gather: len(dstX) = %d, want >= %d", len(dstX), len(rows)*dim))
	}
	if dstY != nil && len(dstY) < len(rows) {
		panic(fmt.Sprintf("data: Gather: len(dstY) = %d, want >= %d", len(dstY), len(rows)))
	}
	for k, r := range rows {
		src := int(r)
		if v.Idx != nil {
			src = int(v.Idx[r])
		}
		if dstX != nil {
			s := d.X[src*dim : (src+1)*dim]
			dst := dstX[k*dim : (k+1)*dim]
			if v.Perm == nil {
				copy(dst, s)
			} else {
				permute(dst, s, v.Perm[:dim])
			}
		}
		if dstY != nil {
			y := d.Y[src]
			if v.LabelMap != nil {
				y = v.LabelMap[y]
			}
			dstY[k] = y
		}
	}
}

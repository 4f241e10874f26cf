package data

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// PartitionConfig chooses how a task's training view is dealt to clients.
//
//	Scheme "iid": shuffle and deal; sizes differ by at most one.
//	Scheme "shards": the pathological non-IID split of McMahan et al. (2017):
//	  sort by label (stable), cut into ShardsPerClient*clients contiguous
//	  shards of (almost) equal size, give each client ShardsPerClient random
//	  shards. ShardsPerClient 0 means 2.
//	Scheme "dirichlet": label skew (Hsu et al. 2019): for every class, draw
//	  proportions p ~ Dir(Alpha, ..., Alpha) over the clients and deal that
//	  class's shuffled samples by p. Smaller Alpha means more skew.
type PartitionConfig struct {
	Scheme          string
	Alpha           float64
	ShardsPerClient int
}

// Partition schemes.
const (
	SchemeIID       = "iid"
	SchemeShards    = "shards"
	SchemeDirichlet = "dirichlet"
)

// DefaultShardsPerClient is the shards scheme's shards per client when
// PartitionConfig.ShardsPerClient is 0, as in the FedAvg and FOT papers.
const DefaultShardsPerClient = 2

// Partition deals the rows of v (indices 0..v.Len()-1) to clients: every
// index goes to exactly one client, every client gets at least one, and each
// client's indices are returned in ascending order. All randomness comes from
// r, so the same r state gives the same partition. Labels are read through
// v.Label, so a remapped view is partitioned by its remapped labels.
//
// Dirichlet: a client that the draw leaves empty receives one sample taken
// at random (from r) from the client holding the most samples (lowest id on
// a tie), repeated until no client is empty. This moves at most clients-1
// samples, never loops, and keeps the label skew of the draw.
//
// Errors (wrapping ErrPartition): clients < 1, more clients than samples,
// more shards than samples, Alpha <= 0 for dirichlet, unknown scheme.
func Partition(v View, clients int, cfg PartitionConfig, r *rand.Rand) ([][]int32, error) {
	n := v.Len()
	if clients < 1 {
		return nil, fmt.Errorf("%w: clients = %d, want >= 1", ErrPartition, clients)
	}
	if clients > n {
		return nil, fmt.Errorf("%w: %d clients but only %d samples", ErrPartition, clients, n)
	}
	var parts [][]int32
	switch cfg.Scheme {
	case SchemeIID:
		parts = partitionIID(n, clients, r)
	case SchemeShards:
		s := cfg.ShardsPerClient
		if s == 0 {
			s = DefaultShardsPerClient
		}
		if s < 0 {
			return nil, fmt.Errorf("%w: shards: shards per client = %d, want >= 1", ErrPartition, cfg.ShardsPerClient)
		}
		if s*clients > n {
			return nil, fmt.Errorf("%w: shards: %d clients x %d shards = %d shards but only %d samples", ErrPartition, clients, s, s*clients, n)
		}
		parts = partitionShards(v, clients, s, r)
	case SchemeDirichlet:
		if !(cfg.Alpha > 0) || math.IsInf(cfg.Alpha, 0) {
			return nil, fmt.Errorf("%w: dirichlet: alpha = %v, want a finite value > 0", ErrPartition, cfg.Alpha)
		}
		var err error
		if parts, err = partitionDirichlet(v, clients, cfg.Alpha, r); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown scheme %q (want %q, %q or %q)", ErrPartition, cfg.Scheme, SchemeIID, SchemeShards, SchemeDirichlet)
	}
	for _, p := range parts {
		slices.Sort(p)
	}
	return parts, nil
}

// permInt32 returns a random permutation of 0..n-1 from r.
func permInt32(n int, r *rand.Rand) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// partitionIID shuffles 0..n-1 and deals consecutive runs: the first n%clients
// clients get one extra sample.
func partitionIID(n, clients int, r *rand.Rand) [][]int32 {
	perm := permInt32(n, r)
	parts := make([][]int32, clients)
	q, rem, off := n/clients, n%clients, 0
	for c := range parts {
		size := q
		if c < rem {
			size++
		}
		parts[c] = perm[off : off+size : off+size]
		off += size
	}
	return parts
}

// partitionShards: stable sort by label, cut into s*clients shards, shard k
// being rows [k*n/S, (k+1)*n/S) of the sorted order, and deal s random
// shards to each client.
func partitionShards(v View, clients, s int, r *rand.Rand) [][]int32 {
	n := v.Len()
	sorted := make([]int32, n)
	labels := make([]int32, n)
	for i := range sorted {
		sorted[i] = int32(i)
		labels[i] = v.Label(i)
	}
	slices.SortStableFunc(sorted, func(a, b int32) int { return cmp.Compare(labels[a], labels[b]) })
	shards := s * clients
	order := r.Perm(shards)
	parts := make([][]int32, clients)
	for c := range parts {
		for _, k := range order[c*s : (c+1)*s] {
			lo, hi := k*n/shards, (k+1)*n/shards
			parts[c] = append(parts[c], sorted[lo:hi]...)
		}
	}
	return parts
}

// partitionDirichlet deals each class by Dirichlet(alpha) proportions, then
// fixes empty clients (see Partition).
func partitionDirichlet(v View, clients int, alpha float64, r *rand.Rand) ([][]int32, error) {
	n := v.Len()
	classes := 0
	for i := 0; i < n; i++ {
		y := v.Label(i)
		if y < 0 {
			return nil, fmt.Errorf("%w: dirichlet: row %d has label %d", ErrPartition, i, y)
		}
		classes = max(classes, int(y)+1)
	}
	byClass := make([][]int32, classes)
	for i := 0; i < n; i++ {
		y := v.Label(i)
		byClass[y] = append(byClass[y], int32(i))
	}
	parts := make([][]int32, clients)
	p := make([]float64, clients)
	for _, rows := range byClass {
		if len(rows) == 0 {
			continue
		}
		r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		dirichlet(p, alpha, r)
		// Cut at the rounded cumulative proportions; the last cut is len(rows).
		cum, lo := 0.0, 0
		for c := range parts {
			cum += p[c]
			hi := int(math.Round(cum * float64(len(rows))))
			if c == clients-1 || hi > len(rows) {
				hi = len(rows)
			}
			hi = max(hi, lo)
			parts[c] = append(parts[c], rows[lo:hi]...)
			lo = hi
		}
	}
	for c := range parts {
		if len(parts[c]) > 0 {
			continue
		}
		big := 0
		for k := range parts {
			if len(parts[k]) > len(parts[big]) {
				big = k
			}
		}
		j := r.IntN(len(parts[big]))
		parts[c] = append(parts[c], parts[big][j])
		parts[big] = slices.Delete(parts[big], j, j+1)
	}
	return parts, nil
}

// dirichlet fills p with one draw from the symmetric Dirichlet(alpha)
// distribution: normalised independent Gamma(alpha, 1) draws. It works in
// log space so that tiny alpha, whose gamma draws underflow float64, still
// gives a valid (very concentrated) p.
func dirichlet(p []float64, alpha float64, r *rand.Rand) {
	mx := math.Inf(-1)
	for i := range p {
		p[i] = logGamma(alpha, r)
		mx = max(mx, p[i])
	}
	s := 0.0
	for i := range p {
		p[i] = math.Exp(p[i] - mx)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
}

// logGamma returns the log of a Gamma(shape, 1) draw, by Marsaglia and Tsang
// (2000): for a >= 1, with d = a - 1/3 and c = 1/sqrt(9d), repeat
// x ~ N(0,1), v = (1 + c x)^3 until v > 0 and
// log U < x^2/2 + d - d v + d log v; return d v. For a < 1 it uses
// Gamma(a) = Gamma(a+1) * U^(1/a), in logs.
func logGamma(a float64, r *rand.Rand) float64 {
	if a < 1 {
		u := 1 - r.Float64() // (0, 1]
		return logGamma(a+1, r) + math.Log(u)/a
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := 1 - r.Float64()
		x2 := x * x
		if u < 1-0.0331*x2*x2 {
			return math.Log(d * v)
		}
		if math.Log(u) < 0.5*x2+d*(1-v+math.Log(v)) {
			return math.Log(d * v)
		}
	}
}

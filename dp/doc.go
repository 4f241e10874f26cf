// Package dp is the privacy accounting of example-level DP-SGD
// (docs/ALGORITHMS.md §5): a Rényi-DP (RDP) accountant for the Poisson-subsampled
// Gaussian mechanism (Mironov, Talwar and Zhang 2019, "Rényi Differential
// Privacy of the Sampled Gaussian Mechanism"), composition over steps, the
// conversion from RDP to (epsilon, delta)-DP, and the calibration of the noise
// multiplier sigma for a target (epsilon, delta).
//
// It is pure maths on float64: no clock, no goroutines, no global mutable
// state, no allocation beyond the returned slices.
//
// # The mechanism
//
// One step of DP-SGD samples every example independently with probability q
// (Poisson sampling), sums the per-example gradients clipped to L2 norm C and
// adds N(0, sigma^2 C^2) noise per coordinate; sigma is the noise multiplier.
// Its RDP at order alpha is eps(alpha) = log(A_alpha) / (alpha - 1) with
//
//	A_alpha = E_{z ~ N(0, sigma^2)} [((1-q) + q exp((2z-1)/(2 sigma^2)))^alpha],
//
// the alpha-moment of the likelihood ratio between (1-q) N(0, sigma^2) +
// q N(1, sigma^2) and N(0, sigma^2). For integer alpha the binomial expansion
// is exact:
//
//	A_alpha = sum_{k=0}^{alpha} C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 sigma^2)),
//
// evaluated in log space (as log(1 + sum_{k>=2} ... expm1(...)), so that tiny
// RDP values keep their relative precision). Fractional orders use the
// series of Mironov et al. §3.3 (two erfc-weighted binomial series split at
// z0 = sigma^2 log(1/q - 1) + 1/2, summed until both terms drop below e^-30),
// the same algorithm as TF-Privacy and Opacus. q = 1 is the plain Gaussian
// mechanism, eps(alpha) = alpha / (2 sigma^2); integer orders reach it through
// the general formula, fractional orders through that closed form.
//
// RDP composes additively: T steps cost T eps(alpha) at every order, and an
// Accountant adds up steps with different (q, sigma).
//
// # RDP to (epsilon, delta)
//
// The conversion is the one of Balle et al. 2020 ("Hypothesis testing
// interpretations and Rényi differential privacy", Theorem 21), as used by
// Opacus and Google's dp_accounting:
//
//	eps = min over orders of  rdp(alpha) - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha),
//
// clamped at 0. It is never worse than the classical rdp - log(delta)/(alpha-1).
//
// DefaultOrders, the grid Epsilon and CalibrateSigma minimise over, is
// 1.1, 1.2, ..., 10.9 (1 + x/10 for x = 1..99), every integer 11..64, then
// 128, 256, 512: Opacus's default grid (which skips 11 and stops at 63) with
// 11, 64 and three large orders added for small epsilon.
//
// # Use
//
//	// once per client, before training: the noise for (eps, delta) over the
//	// expected number of steps the client takes in the whole run
//	q := float64(batch) / float64(len(clientData))
//	sigma, err := dp.CalibrateSigma(q, steps, 8, 1e-5)
//
//	// after training: the epsilon actually spent
//	acc, _ := dp.NewAccountant(nil) // nil => DefaultOrders()
//	acc.Compose(q, sigma, stepsTaken)
//	eps, order, err := acc.Epsilon(1e-5)
//
// The RDP accountant is slightly conservative compared with the PRV
// accountant that the FedSVD authors use (docs/ALGORITHMS.md §5).
package dp

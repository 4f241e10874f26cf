// Package secagg sums vectors from many clients so that the server learns
// the sum and nothing else about any single vector: a pure-Go version of
// the practical secure aggregation protocol of Bonawitz et al. (CCS 2017),
// with the same four rounds, pairwise masks from X25519 key agreement, a
// self mask per client, and dropout recovery from Shamir-shared secrets.
// It uses only the standard library and is transport-agnostic: every
// message is a plain struct with MarshalBinary, UnmarshalBinary and
// EncodedLen (the exact byte count a step sends).
//
// # Protocol
//
// A session (Params.Session, fresh per aggregation) has clients with
// distinct IDs, a threshold t and a vector length L. U1 ⊇ U2 ⊇ U3 are the
// clients still present after rounds 0, 1 and 2.
//
//   - Round 0, keys. Each client u draws two X25519 key pairs, c_u (for
//     encrypting shares) and s_u (for masks), and a 32-byte self-mask seed
//     b_u. It sends Advertise: c_PK, s_PK and a SHA-256 commitment to b_u.
//     The server broadcasts the KeyList of everyone who advertised (U1).
//   - Round 1, shares. Each client t-of-|U1| Shamir-shares s_SK and b_u
//     over GF(2^256+297), one point per client of U1 (x = ID+1), and
//     seals the pair of shares for each other client v with AES-256-GCM
//     under a key derived (HKDF-SHA256) from X25519(c_u, c_v), the session
//     and the direction u->v; the plaintext repeats u and v. It sends
//     ShareKeys; the server forwards to each client of U2 (those whose
//     shares arrived) the shares sealed for it, in a ShareDelivery.
//   - Round 2, masked input. Client u opens its shares (checking the
//     AEAD, the names inside and that each share is a field element),
//     encodes its vector x_u in the ring (below), and sends
//     y_u = x_u + PRG(b_u) + Σ_{v∈U2, v>u} PRG(s_uv) − Σ_{v∈U2, v<u} PRG(s_uv),
//     where s_uv is derived from X25519(s_u, s_v) and the session. In the
//     sum over all of U2 each pairwise mask appears once with + and once
//     with −, so it cancels exactly. The server keeps a running sum of
//     the masked inputs of U3 (one vector of memory, not one per client).
//   - Round 3, unmasking. The server broadcasts an UnmaskRequest listing
//     the survivors U3 and the dropped clients U2∖U3. Each survivor
//     returns its share of b_v for every survivor v and its share of s_SK
//     of every dropped client; it refuses (ErrBothShares) a request that
//     names one client in both lists, or asks for the other kind of
//     share of a client than an earlier request did, and the server
//     refuses a response carrying the wrong kind. With t shares of each
//     secret the server rebuilds every b_v (checked against its
//     commitment) and every dropped s_SK (checked against s_PK),
//     subtracts the self masks of U3, and for each dropped u and survivor
//     v removes the pairwise mask v had added or subtracted. What remains
//     is Σ_{v∈U3} x_v in the ring, exactly.
//
// The masks are AES-256-CTR keystreams: the mask of a 32-byte seed has,
// as element k, the little-endian word of RingBits/8 bytes at keystream
// offset k·RingBits/8 (key = seed, initial counter block zero). CTR mode
// can start at any block, so vectors are expanded in chunks, in parallel
// (Params.Workers) with bit-identical results. Seeds are never used
// directly: HKDF-SHA256 with the labels in keys.go, the session and the
// client IDs derives every AES key, so that no key serves two purposes
// or two sessions. All randomness (keys, b, Shamir coefficients) comes
// from the io.Reader given to NewClient, so runs are reproducible under
// a seeded reader; real deployments pass crypto/rand.Reader.
//
// # Fixed point
//
// A value x becomes round-half-to-even(clamp(x, ±Clip)·2^FracBits) in
// Z_2^RingBits, two's complement; the sum decodes as the signed ring
// value times 2^-FracBits. Ring addition is exact, so the only errors are
// each client's rounding (at most 2^-(FracBits+1)) and, for sums beyond
// 2^53 units, the conversion to float64: ErrorBound(n) = n·2^-(FracBits+1)
// (+ n·Clip·2^-53 in that case) per coordinate, for inputs within the
// clip range. Validate refuses parameters where MaxClients clipped
// inputs could wrap around (MaxClients·Clip·2^FracBits must stay below
// 2^(RingBits−1)); Encode reports how many values it clipped and refuses
// NaN.
//
// DefaultParams is the 64-bit ring with 32 fractional bits, Clip 2^16
// and up to 32767 clients (15+16+32 = 63 bits). Model updates are small
// (typically 1e-4 to 1e-1), so absolute resolution matters: 2^-33 of
// rounding per client is far below float32's own resolution, and float32
// values of magnitude at least 2^-9 are multiples of 2^-32 and encode
// exactly. The clip of 65536 leaves room for GPSE sketches, which are sums
// over samples. The price is 8 bytes a value on the wire, twice a plain
// float32 update. CompactParams is the 32-bit ring (16 fractional bits,
// Clip 256, up to 127 clients): as many bytes as a float32 update, with
// a rounding of up to 7.6e-6 per client and value, about 1% of a 1e-3
// update coordinate; fine for sketches and large updates, not for tiny
// ones.
//
// # Threat model
//
// The server is honest but curious: it follows the protocol and tries to
// learn from what it sees. It may collude with fewer than t clients. Up
// to |U1|−t clients may drop out at any point. Under these assumptions
// the server learns Σ_{v∈U3} x_v and who took part in each round, and
// nothing more about an individual x_v: every masked input is uniformly
// distributed on its own (the tests check this statistically), pairwise
// masks of a dropped client are removed only with that client's s_SK,
// and a late masked input of a client declared dropped stays hidden by
// its self mask, whose seed is never revealed for a dropped client.
//
// Not protected: the sum itself (add differential privacy on top for
// that); participation and vector length; integrity of the result
// against malicious clients (no range proofs: a client can add any
// vector, and a client can submit bad shares, which the server detects
// as ErrAuth through the commitments but cannot attribute or route
// around); and an actively malicious server. This package omits the
// signatures and the consistency-check round of the paper's active
// variant, so a lying server could, for instance, tell different clients
// different survivor sets; each client refuses contradictions within its
// own view only. For the active setting choose t > 2n/3 and add those
// steps; for the honest-but-curious setting t > n/2 is a reasonable
// choice, and t must not exceed the number of clients expected to
// survive.
//
// # Costs
//
// With n = |U1|, L values and w = RingBits/8 bytes a value, the bytes of
// each message (EncodedLen) are: Advertise 109; KeyList 13+100n; ShareKeys
// 17+94(n−1); ShareDelivery 17+94(|U2|−1); MaskedInput 18+wL;
// UnmaskRequest 17+4|U2|; UnmaskResponse 21+37|U2|. Only the masked input
// grows with L; the rest grows with n (quadratically in total). A
// client does 2 Shamir sharings (O(n·t) big-integer operations), about
// 2n X25519 agreements, n AEAD seals and opens, and |U2| mask
// expansions of L values; the server does |U3| + |U3|·|U2∖U3| mask
// expansions and |U2| Lagrange reconstructions (O(t²) each). One mask
// expansion costs about 2-4 ns a value on one core of an AMD EPYC
// (BenchmarkMaskExpand).
package secagg

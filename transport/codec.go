package transport

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"unsafe"
)

// magic opens every encoded message.
const magic = "FOTS"

// Sizes of the fixed parts of the encoding (see doc.go).
const (
	headerLen     = 42 // magic 4, version 1, kind 1, round 4, task 4, client 4, flags 4, n 8, 3 counts 4 each
	minScalarLen  = 2 + 8
	minTensorLen  = 2 + 4 + 4 + 4
	tensorDimsLen = 4 + 4 + 4
	sigHdrLen     = 2 // the signature trailer's length field
)

var le = binary.LittleEndian

// finiteBlock is the number of float32 values copied and then checked for
// NaN/Inf at a time (16 KiB, well inside L1).
const finiteBlock = 4096

// nativeLE is true on little-endian hosts, where float32 and int32 slices
// are copied to and from the wire with one memmove.
var nativeLE = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// EncodedLen returns the number of bytes AppendBinary appends for m.
func (m *Message) EncodedLen() int {
	n, _ := m.layout(nil, false)
	return n
}

// BodyLen returns the size of m's encoding without its signature trailer
// (EncodedLen minus 2 + len(m.Sig)): the bytes a signature covers, and
// what the message's content costs on the wire whether it is signed or
// not (the same size as its wire version 2 encoding).
func (m *Message) BodyLen() int { return m.EncodedLen() - sigHdrLen - len(m.Sig) }

// layout returns the encoded size of m and, if offsets is set, appends to
// dst the offset of each tensor's values from the start of the encoding.
func (m *Message) layout(dst []int, offsets bool) (int, []int) {
	n := headerLen + 4*len(m.Clients)
	for i := range m.Scalars {
		n += minScalarLen + len(m.Scalars[i].Name)
	}
	for i := range m.Tensors {
		n += minTensorLen + len(m.Tensors[i].Name)
		n += pad4(n)
		if offsets {
			dst = append(dst, n)
		}
		n += 4 * len(m.Tensors[i].Data)
	}
	return n + sigHdrLen + len(m.Sig), dst
}

// inPlace reports whether v already holds, on a little-endian host, the
// bytes b starts with: v is a view of b's first 4*len(v) bytes.
func inPlace(v []float32, b []byte) bool {
	return nativeLE && len(v) > 0 && len(b) >= 4*len(v) &&
		unsafe.Pointer(unsafe.SliceData(v)) == unsafe.Pointer(unsafe.SliceData(b))
}

// pad4 returns the number of zero bytes that bring offset n to a multiple
// of 4: tensor values start 4-byte aligned within the message, so that a
// receiver can use them in place (DecodeShared).
func pad4(n int) int { return -n & 3 }

// AppendBinary appends the wire encoding of m (see doc.go for the format) to
// dst and returns the extended slice. It checks what Decode checks: a valid
// Kind, names of at most MaxNameLen bytes, counts within MaxClients,
// MaxScalars and MaxTensors, 0 <= Rows, Cols <= MaxDim, Rows*Cols ==
// len(Data), and finite scalars and tensor values. On error dst is returned
// with its original length and the error wraps ErrKind, ErrLength, ErrShape
// or ErrNonFinite.
//
// It grows dst at most once; when cap(dst)-len(dst) >= m.EncodedLen() it
// allocates nothing.
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return dst, err
	}
	orig, start := dst, len(dst)
	size := m.EncodedLen()
	if cap(dst)-start < size {
		grown := make([]byte, start, start+size)
		copy(grown, dst)
		dst = grown
	}
	b := dst[start : start+size]

	m.putHeader(b)
	p := headerLen

	p += putInt32s(b[p:], m.Clients)
	for i := range m.Scalars {
		s := &m.Scalars[i]
		le.PutUint16(b[p:], uint16(len(s.Name)))
		p += 2
		p += copy(b[p:], s.Name)
		le.PutUint64(b[p:], math.Float64bits(s.Value))
		p += 8
	}
	for i := range m.Tensors {
		t := &m.Tensors[i]
		le.PutUint16(b[p:], uint16(len(t.Name)))
		p += 2
		p += copy(b[p:], t.Name)
		le.PutUint32(b[p:], uint32(t.Rows))
		le.PutUint32(b[p+4:], uint32(t.Cols))
		le.PutUint32(b[p+8:], uint32(len(t.Data)))
		p += tensorDimsLen
		pad := pad4(p)
		clear(b[p : p+pad])
		p += pad
		if inPlace(t.Data, b[p:]) {
			// Written there by the caller (Frame): check only.
			if j := firstNonFinite(t.Data); j >= 0 {
				return orig, fmt.Errorf("%w: encode: tensor %d %q value %d = %v", ErrNonFinite, i, t.Name, j, t.Data[j])
			}
			p += 4 * len(t.Data)
			continue
		}
		// Copy and check block by block, while the block is in cache.
		for k := 0; k < len(t.Data); k += finiteBlock {
			blk := t.Data[k:min(k+finiteBlock, len(t.Data))]
			p += putFloat32s(b[p:], blk)
			if j := firstNonFinite(blk); j >= 0 {
				return orig, fmt.Errorf("%w: encode: tensor %d %q value %d = %v", ErrNonFinite, i, t.Name, k+j, blk[j])
			}
		}
	}
	le.PutUint16(b[p:], uint16(len(m.Sig)))
	p += sigHdrLen
	p += copy(b[p:], m.Sig)
	if p != size {
		panic(fmt.Sprintf("transport: encoded %d bytes, computed %d", p, size))
	}
	return dst[:start+size], nil
}

// putHeader writes m's fixed-size header into b[:headerLen].
func (m *Message) putHeader(b []byte) {
	copy(b, magic)
	b[4] = Version
	b[5] = byte(m.Kind)
	le.PutUint32(b[6:], uint32(m.Round))
	le.PutUint32(b[10:], uint32(m.Task))
	le.PutUint32(b[14:], uint32(m.Client))
	le.PutUint32(b[18:], m.Flags)
	le.PutUint64(b[22:], uint64(m.N))
	le.PutUint32(b[30:], uint32(len(m.Clients)))
	le.PutUint32(b[34:], uint32(len(m.Scalars)))
	le.PutUint32(b[38:], uint32(len(m.Tensors)))
}

// SigningDigest returns the SHA-256 digest of m's encoding without its
// signature trailer (the first BodyLen bytes AppendBinary writes), which
// is what a signature of m covers (package auth). It hashes the encoding
// as it would be written, without building it, and does not depend on
// m.Sig, so a sender computes it before it sets Sig and a receiver from
// the decoded message (the encoding is canonical). It checks what
// AppendBinary checks, except the tensor values, and returns the same
// errors.
func (m *Message) SigningDigest() ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	if err := m.check(); err != nil {
		return out, err
	}
	h := sha256.New()
	var buf [headerLen + MaxNameLen + tensorDimsLen + 8]byte
	m.putHeader(buf[:])
	h.Write(buf[:headerLen])
	p := headerLen
	p += hashWords(h, m.Clients, putInt32s)
	for i := range m.Scalars {
		s := &m.Scalars[i]
		b := le.AppendUint16(buf[:0], uint16(len(s.Name)))
		b = append(b, s.Name...)
		b = le.AppendUint64(b, math.Float64bits(s.Value))
		h.Write(b)
		p += len(b)
	}
	for i := range m.Tensors {
		t := &m.Tensors[i]
		b := le.AppendUint16(buf[:0], uint16(len(t.Name)))
		b = append(b, t.Name...)
		b = le.AppendUint32(b, uint32(t.Rows))
		b = le.AppendUint32(b, uint32(t.Cols))
		b = le.AppendUint32(b, uint32(len(t.Data)))
		p += len(b)
		pad := pad4(p)
		b = append(b, make([]byte, pad)...)
		p += pad
		h.Write(b)
		p += hashWords(h, t.Data, putFloat32s)
	}
	h.Sum(out[:0])
	return out, nil
}

// hashWords writes v's wire bytes (4 little-endian bytes per value, as
// put encodes them) to the hash h and returns their number.
func hashWords[T float32 | int32](h io.Writer, v []T, put func([]byte, []T) int) int {
	if len(v) == 0 {
		return 0
	}
	if nativeLE {
		return must(h.Write(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))))
	}
	var blk [4 * finiteBlock]byte
	for k := 0; k < len(v); k += finiteBlock {
		part := v[k:min(k+finiteBlock, len(v))]
		h.Write(blk[:put(blk[:], part)])
	}
	return 4 * len(v)
}

// must returns n; writes to a hash never fail.
func must(n int, _ error) int { return n }

// check validates m before it is encoded, all but the tensor values, which
// AppendBinary checks as it copies them.
func (m *Message) check() error {
	if !m.Kind.Valid() {
		return fmt.Errorf("%w: encode: %d", ErrKind, m.Kind)
	}
	if len(m.Clients) > MaxClients {
		return fmt.Errorf("%w: encode: %d clients, max %d", ErrLength, len(m.Clients), MaxClients)
	}
	if len(m.Scalars) > MaxScalars {
		return fmt.Errorf("%w: encode: %d scalars, max %d", ErrLength, len(m.Scalars), MaxScalars)
	}
	if len(m.Tensors) > MaxTensors {
		return fmt.Errorf("%w: encode: %d tensors, max %d", ErrLength, len(m.Tensors), MaxTensors)
	}
	if len(m.Sig) > MaxSigLen {
		return fmt.Errorf("%w: encode: signature of %d bytes, max %d", ErrLength, len(m.Sig), MaxSigLen)
	}
	for i := range m.Scalars {
		s := &m.Scalars[i]
		if len(s.Name) > MaxNameLen {
			return fmt.Errorf("%w: encode: scalar %d name is %d bytes, max %d", ErrLength, i, len(s.Name), MaxNameLen)
		}
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			return fmt.Errorf("%w: encode: scalar %d %q = %v", ErrNonFinite, i, s.Name, s.Value)
		}
	}
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if len(t.Name) > MaxNameLen {
			return fmt.Errorf("%w: encode: tensor %d name is %d bytes, max %d", ErrLength, i, len(t.Name), MaxNameLen)
		}
		if t.Rows < 0 || t.Cols < 0 || t.Rows > MaxDim || t.Cols > MaxDim || uint64(len(t.Data)) > math.MaxUint32 {
			return fmt.Errorf("%w: encode: tensor %d %q is %d x %d with %d values", ErrLength, i, t.Name, t.Rows, t.Cols, len(t.Data))
		}
		if uint64(t.Rows)*uint64(t.Cols) != uint64(len(t.Data)) {
			return fmt.Errorf("%w: encode: tensor %d %q is %d x %d but has %d values", ErrShape, i, t.Name, t.Rows, t.Cols, len(t.Data))
		}
	}
	return nil
}

// Decode parses one encoded message from b into m, overwriting every field.
//
// It checks, in order: the magic (ErrMagic), the version (ErrVersion), the
// kind (ErrKind); then that every count and length is within the codec's
// limits (ErrLength) and within the bytes that remain (ErrTruncated), that
// Rows*Cols equals each tensor's data length (ErrShape), that the padding
// before each tensor's values is zero (ErrPadding), that all scalars and
// tensor values are finite (ErrNonFinite) and that nothing follows the
// signature trailer (ErrTrailing). The returned error wraps exactly one of
// those sentinels and names the offending part. Decode never panics,
// whatever b holds, and never allocates more than a small multiple of
// len(b). It does not verify the signature (m.Sig): that is the
// receiver's business (package auth).
//
// To avoid allocation, Decode reuses the backing arrays of m.Clients,
// m.Scalars, m.Tensors, m.Sig and each m.Tensors[i].Data when they are large enough
// (and keeps a name string when it is unchanged): decoding a stream of
// same-shaped messages into one Message allocates nothing. The flip side is
// that slices previously taken from m are overwritten; decode into a new (or
// zero) Message to get fresh storage. Decode never retains b. On error m
// holds a partly decoded message and must not be used.
func Decode(b []byte, m *Message) error { return decode(b, m, false) }

// DecodeShared is Decode without the copy of the tensor values: on a
// little-endian host, when b is 4-byte aligned, each m.Tensors[i].Data is a
// view of b's bytes (values start 4-byte aligned within a message, see
// doc.go), so the values are read once, to check that they are finite.
// Otherwise it decodes like Decode. b must stay unmodified while m is in
// use, and m keeps it alive: pass a buffer nobody else writes to, such as a
// received NATS payload.
func DecodeShared(b []byte, m *Message) error { return decode(b, m, true) }

func decode(b []byte, m *Message, shared bool) error {
	if head := b[:min(len(b), len(magic))]; string(head) != magic[:len(head)] {
		return fmt.Errorf("%w: got % x", ErrMagic, head)
	}
	if len(b) > 4 && b[4] != Version {
		return fmt.Errorf("%w: got %d, want %d", ErrVersion, b[4], Version)
	}
	if len(b) > 5 && !Kind(b[5]).Valid() {
		return fmt.Errorf("%w: %d", ErrKind, b[5])
	}
	if len(b) < headerLen {
		return fmt.Errorf("%w: header: need %d bytes, have %d", ErrTruncated, headerLen, len(b))
	}
	m.Kind = Kind(b[5])
	m.Round = int32(le.Uint32(b[6:]))
	m.Task = int32(le.Uint32(b[10:]))
	m.Client = int32(le.Uint32(b[14:]))
	m.Flags = le.Uint32(b[18:])
	m.N = int64(le.Uint64(b[22:]))
	nClients := le.Uint32(b[30:])
	nScalars := le.Uint32(b[34:])
	nTensors := le.Uint32(b[38:])
	switch {
	case nClients > MaxClients:
		return fmt.Errorf("%w: %d clients, max %d", ErrLength, nClients, MaxClients)
	case nScalars > MaxScalars:
		return fmt.Errorf("%w: %d scalars, max %d", ErrLength, nScalars, MaxScalars)
	case nTensors > MaxTensors:
		return fmt.Errorf("%w: %d tensors, max %d", ErrLength, nTensors, MaxTensors)
	}
	// The counts are checked against the smallest possible encoding of what
	// they declare before anything is allocated.
	rest := b[headerLen:]
	if need := 4*uint64(nClients) + minScalarLen*uint64(nScalars) + minTensorLen*uint64(nTensors); need > uint64(len(rest)) {
		return fmt.Errorf("%w: %d clients, %d scalars and %d tensors need at least %d bytes, have %d",
			ErrTruncated, nClients, nScalars, nTensors, need, len(rest))
	}

	m.Clients = resize(m.Clients, int(nClients))
	rest = rest[getInt32s(m.Clients, rest):]

	m.Scalars = resize(m.Scalars, int(nScalars))
	for i := range m.Scalars {
		s := &m.Scalars[i]
		name, r, err := getName(rest)
		if err != nil {
			return fmt.Errorf("%w: scalar %d name", err, i)
		}
		if len(r) < 8 {
			return fmt.Errorf("%w: scalar %d %q value: need 8 bytes, have %d", ErrTruncated, i, name, len(r))
		}
		v := math.Float64frombits(le.Uint64(r))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: scalar %d %q = %v", ErrNonFinite, i, name, v)
		}
		if s.Name != string(name) {
			s.Name = string(name)
		}
		s.Value = v
		rest = r[8:]
	}

	m.Tensors = resize(m.Tensors, int(nTensors))
	for i := range m.Tensors {
		t := &m.Tensors[i]
		name, r, err := getName(rest)
		if err != nil {
			return fmt.Errorf("%w: tensor %d name", err, i)
		}
		if len(r) < tensorDimsLen {
			return fmt.Errorf("%w: tensor %d %q dims: need %d bytes, have %d", ErrTruncated, i, name, tensorDimsLen, len(r))
		}
		rows, cols, n := le.Uint32(r), le.Uint32(r[4:]), le.Uint32(r[8:])
		r = r[tensorDimsLen:]
		if rows > MaxDim || cols > MaxDim {
			return fmt.Errorf("%w: tensor %d %q is %d x %d, max dim %d", ErrLength, i, name, rows, cols, MaxDim)
		}
		if uint64(rows)*uint64(cols) != uint64(n) {
			return fmt.Errorf("%w: tensor %d %q is %d x %d but declares %d values", ErrShape, i, name, rows, cols, n)
		}
		pad := pad4(len(b) - len(r))
		if len(r) < pad {
			return fmt.Errorf("%w: tensor %d %q padding: need %d bytes, have %d", ErrTruncated, i, name, pad, len(r))
		}
		for _, x := range r[:pad] {
			if x != 0 {
				return fmt.Errorf("%w: tensor %d %q padding is % x", ErrPadding, i, name, r[:pad])
			}
		}
		r = r[pad:]
		if 4*uint64(n) > uint64(len(r)) {
			return fmt.Errorf("%w: tensor %d %q data: need %d bytes, have %d", ErrTruncated, i, name, 4*uint64(n), len(r))
		}
		if t.Name != string(name) {
			t.Name = string(name)
		}
		t.Rows, t.Cols = int(rows), int(cols)
		if shared && nativeLE && n > 0 && uintptr(unsafe.Pointer(&r[0]))%4 == 0 {
			t.Data = unsafe.Slice((*float32)(unsafe.Pointer(&r[0])), int(n))
			if j := firstNonFinite(t.Data); j >= 0 {
				return fmt.Errorf("%w: tensor %d %q value %d = %v", ErrNonFinite, i, name, j, t.Data[j])
			}
			rest = r[4*int(n):]
			continue
		}
		t.Data = resize(t.Data, int(n))
		// Copy and check block by block, while the block is in cache.
		for k := 0; k < len(t.Data); k += finiteBlock {
			blk := t.Data[k:min(k+finiteBlock, len(t.Data))]
			getFloat32s(blk, r[4*k:])
			if j := firstNonFinite(blk); j >= 0 {
				return fmt.Errorf("%w: tensor %d %q value %d = %v", ErrNonFinite, i, name, k+j, blk[j])
			}
		}
		rest = r[4*len(t.Data):]
	}
	sig, r, err := getName(rest)
	if err != nil {
		return fmt.Errorf("%w: signature", err)
	}
	m.Sig = append(m.Sig[:0], sig...)
	rest = r
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes", ErrTrailing, len(rest))
	}
	return nil
}

// getName reads a uint16-length-prefixed name.
func getName(b []byte) (name, rest []byte, err error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("%w: need 2 bytes for the length, have %d", ErrTruncated, len(b))
	}
	n := int(le.Uint16(b))
	if n > MaxNameLen {
		return nil, nil, fmt.Errorf("%w: %d bytes, max %d", ErrLength, n, MaxNameLen)
	}
	if len(b)-2 < n {
		return nil, nil, fmt.Errorf("%w: need %d bytes, have %d", ErrTruncated, n, len(b)-2)
	}
	return b[2 : 2+n], b[2+n:], nil
}

// resize returns s with length n, reusing its backing array when it is large
// enough. A nil s stays nil when n == 0.
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// putFloat32s writes v as little-endian float32 bits to b and returns the
// number of bytes written (4*len(v)). b must be long enough.
func putFloat32s(b []byte, v []float32) int {
	n := 4 * len(v)
	if n == 0 {
		return 0
	}
	if nativeLE {
		return copy(b[:n], unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), n))
	}
	b = b[:n]
	for i, x := range v {
		le.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return n
}

// getFloat32s fills v from little-endian float32 bits in b and returns the
// number of bytes read (4*len(v)). b must be long enough.
func getFloat32s(v []float32, b []byte) int {
	n := 4 * len(v)
	if n == 0 {
		return 0
	}
	if nativeLE {
		return copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), n), b[:n])
	}
	b = b[:n]
	for i := range v {
		v[i] = math.Float32frombits(le.Uint32(b[4*i:]))
	}
	return n
}

// putInt32s and getInt32s are the int32 counterparts of putFloat32s and
// getFloat32s.
func putInt32s(b []byte, v []int32) int {
	n := 4 * len(v)
	if n == 0 {
		return 0
	}
	if nativeLE {
		return copy(b[:n], unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), n))
	}
	b = b[:n]
	for i, x := range v {
		le.PutUint32(b[4*i:], uint32(x))
	}
	return n
}

func getInt32s(v []int32, b []byte) int {
	n := 4 * len(v)
	if n == 0 {
		return 0
	}
	if nativeLE {
		return copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), n), b[:n])
	}
	b = b[:n]
	for i := range v {
		v[i] = int32(le.Uint32(b[4*i:]))
	}
	return n
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, or -1.
// On amd64 with AVX2 an assembly scan checks 32 values per step first.
//
// The Go scan looks at two values per uint64: a float32 is non-finite iff
// its exponent bits are all ones, i.e. (bits & 0x7f800000) == 0x7f800000,
// and adding 0x00800000 to the masked bits sets bit 31 exactly in that case
// (without carrying into the neighbouring value). The OR of those sums over
// a block therefore has bit 31 or bit 63 set iff the block holds a
// non-finite value.
func firstNonFinite(v []float32) int {
	if hasAVX2 && len(v) >= 32 {
		// The vector scan only says whether there is one; the scalar scan
		// finds it (a rejected message, so speed no longer matters).
		n := len(v) &^ 31
		if !anyNonFiniteAVX2(&v[0], n) {
			if j := firstNonFiniteGo(v[n:]); j >= 0 {
				return n + j
			}
			return -1
		}
	}
	return firstNonFiniteGo(v)
}

// firstNonFiniteGo is firstNonFinite in Go.
func firstNonFiniteGo(v []float32) int {
	const (
		mask = 0x7f8000007f800000
		inc  = 0x0080000000800000
		sign = 0x8000000080000000
	)
	i := 0
	if len(v) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(v)))%8 != 0 {
		if !finite32(v[0]) {
			return 0
		}
		i = 1
	}
	if pairs := (len(v) - i) / 2; pairs > 0 {
		u := unsafe.Slice((*uint64)(unsafe.Pointer(&v[i])), pairs)
		const block = 64
		for k := 0; k < len(u); k += block {
			end := min(k+block, len(u))
			var a0, a1, a2, a3 uint64
			blk := u[k:end]
			for len(blk) >= 4 {
				a0 |= (blk[0] & mask) + inc
				a1 |= (blk[1] & mask) + inc
				a2 |= (blk[2] & mask) + inc
				a3 |= (blk[3] & mask) + inc
				blk = blk[4:]
			}
			for _, x := range blk {
				a0 |= (x & mask) + inc
			}
			if (a0|a1|a2|a3)&sign != 0 {
				for j := i + 2*k; j < i+2*end; j++ {
					if !finite32(v[j]) {
						return j
					}
				}
			}
		}
		i += 2 * pairs
	}
	for ; i < len(v); i++ {
		if !finite32(v[i]) {
			return i
		}
	}
	return -1
}

func finite32(x float32) bool { return math.Float32bits(x)&0x7f800000 != 0x7f800000 }

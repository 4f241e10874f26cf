package transport

import (
	"fmt"
	"time"
)

// Frame types: the first byte of every NATS payload this package publishes.
const (
	frameWhole   byte = 0x03 // 3 zero bytes follow, then one encoded message, 4-byte aligned
	frameChunk   byte = 0x02 // a chunk header follows, then a piece of one encoded message
	frameWholeV1 byte = 0x01 // wire version 1's whole frame: the message follows the type byte
)

// wholeHdrLen is the size of a whole frame's header: the type byte and 3
// zero bytes, so that the message starts 4-byte aligned in the payload.
const wholeHdrLen = 4

// chunkHdrLen is the size of a chunk frame's header, frame type included:
// type 1, publisher 8, sequence 8, index 4, count 4, total 4.
const chunkHdrLen = 1 + 8 + 8 + 4 + 4 + 4

// Reassembly limits (per subscription).
const (
	maxMessageBytes = 1 << 30         // largest reassembled message
	maxPendingBytes = 1 << 30         // bytes held by incomplete messages
	maxAssemblies   = 1024            // incomplete messages (at most one per publisher)
	assemblyTimeout = 2 * time.Minute // an incomplete message older than this is dropped
	maxSpareBuffers = 4               // reassembly buffers kept for reuse
)

// chunkHeader is the decoded header of a chunk frame.
type chunkHeader struct {
	pub          uint64 // publisher id (random per Conn)
	seq          uint64 // message sequence number at that publisher
	index, count uint32 // this chunk's index, number of chunks
	total        uint32 // length of the whole encoded message
}

func putChunkHeader(b []byte, h chunkHeader) {
	b[0] = frameChunk
	le.PutUint64(b[1:], h.pub)
	le.PutUint64(b[9:], h.seq)
	le.PutUint32(b[17:], h.index)
	le.PutUint32(b[21:], h.count)
	le.PutUint32(b[25:], h.total)
}

// parseChunk checks a chunk frame and returns its header and body.
func parseChunk(b []byte) (chunkHeader, []byte, error) {
	if len(b) < chunkHdrLen {
		return chunkHeader{}, nil, fmt.Errorf("%w: chunk frame of %d bytes, header needs %d", ErrFrame, len(b), chunkHdrLen)
	}
	h := chunkHeader{
		pub:   le.Uint64(b[1:]),
		seq:   le.Uint64(b[9:]),
		index: le.Uint32(b[17:]),
		count: le.Uint32(b[21:]),
		total: le.Uint32(b[25:]),
	}
	body := b[chunkHdrLen:]
	switch {
	case h.count == 0 || h.index >= h.count:
		return h, nil, fmt.Errorf("%w: chunk %d of %d", ErrFrame, h.index, h.count)
	case len(body) == 0 || uint64(len(body)) > uint64(h.total) || h.count > h.total:
		return h, nil, fmt.Errorf("%w: chunk %d of %d carries %d of %d bytes", ErrFrame, h.index, h.count, len(body), h.total)
	case h.total > maxMessageBytes:
		return h, nil, fmt.Errorf("%w: chunked message of %d bytes, max %d", ErrTooLarge, h.total, maxMessageBytes)
	}
	return h, body, nil
}

// assembly is one chunked message being put back together.
type assembly struct {
	pub, seq uint64
	count    uint32
	got      uint32 // chunks received
	bytes    int    // bytes received
	chunk    int    // size of every chunk but the last; 0 until one is seen
	seen     []uint64
	buf      []byte
	started  time.Time
}

// assembler reassembles the chunked messages of one subscription. It is not
// safe for concurrent use; each subscription's delivery goroutine owns one.
//
// NATS delivers the messages of one publisher connection in order, and a Conn
// publishes the chunks of one message back to back, so at most one message
// per publisher is in flight: when a chunk of a newer message arrives, the
// older one cannot complete any more and is dropped with ErrIncomplete.
// Incomplete messages are also dropped after assemblyTimeout, and the oldest
// ones when more than maxAssemblies or maxPendingBytes are held.
type assembler struct {
	byPub   map[uint64]*assembly
	pending int // bytes allocated to incomplete messages
	spare   [][]byte

	// limits, variables so tests can shrink them
	maxPending    int
	maxAssemblies int
	timeout       time.Duration
}

func newAssembler() *assembler {
	return &assembler{
		byPub:         make(map[uint64]*assembly),
		maxPending:    maxPendingBytes,
		maxAssemblies: maxAssemblies,
		timeout:       assemblyTimeout,
	}
}

// add files one chunk. It returns the complete message when this chunk
// finished one (the caller owns the buffer from then on), and an error for every message it dropped, this
// chunk's included when the chunk is inconsistent with its message.
func (a *assembler) add(h chunkHeader, body []byte, now time.Time) (msg []byte, errs []error) {
	// Drop what can no longer complete.
	for pub, as := range a.byPub {
		if now.Sub(as.started) > a.timeout {
			errs = append(errs, a.drop(pub, fmt.Sprintf("timed out after %v", a.timeout)))
		}
	}
	as := a.byPub[h.pub]
	if as != nil && as.seq != h.seq {
		errs = append(errs, a.drop(h.pub, fmt.Sprintf("superseded by message %d", h.seq)))
		as = nil
	}
	if as == nil {
		total := int(h.total)
		if total > a.maxPending {
			return nil, append(errs, fmt.Errorf("%w: chunked message %d from publisher %016x: %d bytes, max %d pending",
				ErrTooLarge, h.seq, h.pub, total, a.maxPending))
		}
		for len(a.byPub) >= a.maxAssemblies || a.pending+total > a.maxPending {
			errs = append(errs, a.drop(a.oldest(), "evicted: too many pending chunked messages"))
		}
		as = &assembly{
			pub: h.pub, seq: h.seq, count: h.count,
			seen:    make([]uint64, (h.count+63)/64),
			buf:     a.buffer(total),
			started: now,
		}
		a.byPub[h.pub] = as
		a.pending += total
	}

	// Place the chunk: every chunk but the last has the same size, so chunk
	// i < count-1 starts at i*size and the last one ends the message.
	var off int
	bad := ""
	switch {
	case h.count != as.count || int(h.total) != len(as.buf):
		bad = fmt.Sprintf("chunk %d says %d chunks of %d bytes, first said %d of %d", h.index, h.count, h.total, as.count, len(as.buf))
	case as.seen[h.index/64]&(1<<(h.index%64)) != 0:
		bad = fmt.Sprintf("chunk %d repeated", h.index)
	case h.index == h.count-1:
		off = len(as.buf) - len(body)
	default:
		if as.chunk == 0 {
			as.chunk = len(body)
		}
		off = int(h.index) * as.chunk
		if len(body) != as.chunk || off+len(body) > len(as.buf) {
			bad = fmt.Sprintf("chunk %d of %d bytes does not fit (chunk size %d, total %d)", h.index, len(body), as.chunk, len(as.buf))
		}
	}
	if bad != "" {
		return nil, append(errs, a.drop(h.pub, bad))
	}
	copy(as.buf[off:], body)
	as.seen[h.index/64] |= 1 << (h.index % 64)
	as.got++
	as.bytes += len(body)
	if as.got < as.count {
		return nil, errs
	}
	if as.bytes != len(as.buf) {
		return nil, append(errs, a.drop(h.pub, fmt.Sprintf("chunks hold %d bytes, want %d", as.bytes, len(as.buf))))
	}
	delete(a.byPub, h.pub)
	a.pending -= len(as.buf)
	return as.buf, errs
}

// drop discards the assembly of publisher pub and returns the error that
// reports it.
func (a *assembler) drop(pub uint64, why string) error {
	as := a.byPub[pub]
	delete(a.byPub, pub)
	a.pending -= len(as.buf)
	a.release(as.buf)
	return fmt.Errorf("%w: message %d from publisher %016x: %d of %d chunks (%d of %d bytes): %s",
		ErrIncomplete, as.seq, as.pub, as.got, as.count, as.bytes, len(as.buf), why)
}

// oldest returns the publisher whose assembly started first.
func (a *assembler) oldest() uint64 {
	var pub uint64
	var t time.Time
	first := true
	for p, as := range a.byPub {
		if first || as.started.Before(t) || as.started.Equal(t) && p < pub {
			pub, t, first = p, as.started, false
		}
	}
	return pub
}

// buffer returns a byte slice of length n, reusing a spare one if possible.
func (a *assembler) buffer(n int) []byte {
	for i, b := range a.spare {
		if cap(b) >= n {
			a.spare = append(a.spare[:i], a.spare[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// release hands a buffer back for reuse.
func (a *assembler) release(b []byte) {
	if len(a.spare) < maxSpareBuffers {
		a.spare = append(a.spare, b)
		return
	}
	// Keep the largest ones.
	for i, s := range a.spare {
		if cap(s) < cap(b) {
			a.spare[i] = b
			return
		}
	}
}

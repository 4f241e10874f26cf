package transport

import (
	"fmt"
	"slices"
	"unsafe"
)

// headroom is the number of bytes kept before an encoded message in a
// publish buffer: room for a chunk header (chunkHdrLen) or, in its last
// wholeHdrLen bytes, a whole frame's header; a multiple of 8, so that the
// message, and with it its tensor values, are aligned in memory.
const headroom = 32

// A Frame is a message encoded for publishing whose tensor values can be
// written in place, for publishers of large tensors: PublishFrame sends it
// without the copy into the connection's buffer that Publish makes.
//
//	v := f.Values(0)   // where tensor 0's values went last time
//	if len(v) != n {   // the first message, or another layout
//		v = make([]float32, n)
//	}
//	fill(v)
//	m.Tensors[0].Data = v
//	f.Encode(m)        // copies v only if it is not in place
//	conn.PublishFrame(subject, f)
//
// The zero Frame is ready to use. A Frame is not safe for concurrent use:
// each publisher has its own.
type Frame struct {
	buf  []byte // headroom bytes, then the encoded message
	kind Kind
	offs []int // offset in buf[headroom:] of each tensor's values
	lens []int // and their number
}

// Encode encodes m into f, replacing what f held, with the checks of
// AppendBinary; on error f is left empty. Tensor values that already lie
// where they go in f (from Values, when m has the layout of the last
// message) are checked but not copied; values anywhere else are copied,
// including values in f at another place.
func (f *Frame) Encode(m *Message) error {
	size, offs := m.layout(f.offs[:0], true)
	for i := range m.Tensors {
		d := m.Tensors[i].Data
		if f.overlaps(d) && !f.at(d, headroom+offs[i]) {
			// A change of layout moved the values: take them out of the
			// way of the encoding first (rare).
			mm := *m
			mm.Tensors = slices.Clone(m.Tensors)
			for j := range mm.Tensors {
				if f.overlaps(mm.Tensors[j].Data) {
					mm.Tensors[j].Data = slices.Clone(mm.Tensors[j].Data)
				}
			}
			m = &mm
			break
		}
	}
	buf := f.buf
	if cap(buf) < headroom+size {
		buf = make([]byte, headroom, headroom+size)
	}
	b, err := m.AppendBinary(buf[:headroom])
	f.lens = f.lens[:0]
	if err != nil {
		f.buf, f.offs = f.buf[:0], offs[:0]
		return err
	}
	f.buf, f.kind, f.offs = b, m.Kind, offs
	for i := range m.Tensors {
		f.lens = append(f.lens, len(m.Tensors[i].Data))
	}
	return nil
}

// Len returns the size of the encoded message, 0 for an empty frame.
func (f *Frame) Len() int { return max(len(f.buf)-headroom, 0) }

// Bytes returns the encoded message (nil for an empty frame). It is valid
// until the next Encode or PublishFrame.
func (f *Frame) Bytes() []byte {
	if f.Len() == 0 {
		return nil
	}
	return f.buf[headroom:]
}

// Values returns the values of tensor i of the last message encoded, where
// they lie in f, for the caller to overwrite before it encodes the next
// message of the same layout (same counts, names and tensor sizes). It
// returns nil when there is no tensor i or it is empty, and on big-endian
// hosts (where the wire's byte order is not memory's). After PublishFrame
// the values are undefined (chunk headers may have been written over them)
// until they are written again.
func (f *Frame) Values(i int) []float32 {
	if !nativeLE || i < 0 || i >= len(f.lens) || f.lens[i] == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&f.buf[headroom+f.offs[i]])), f.lens[i])
}

// at reports whether v is the view of f's buffer at byte offset off.
func (f *Frame) at(v []float32, off int) bool {
	all := f.buf[:cap(f.buf)]
	return off+4*len(v) <= len(all) && inPlace(v, all[off:])
}

// overlaps reports whether v shares memory with f's buffer.
func (f *Frame) overlaps(v []float32) bool {
	if len(v) == 0 || cap(f.buf) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(f.buf)))
	hi := lo + uintptr(cap(f.buf))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	return p < hi && p+4*uintptr(len(v)) > lo
}

// PublishFrame publishes the message encoded in f on subject, as Publish
// does, without copying it, and returns its size. Publishing may write
// chunk headers into f: write the tensor values again before the next
// Encode.
func (c *Conn) PublishFrame(subject string, f *Frame) (int, error) {
	if f.Len() == 0 {
		return 0, fmt.Errorf("%w: publish on %q: empty frame", ErrLength, subject)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.publish(subject, f.kind, f.buf)
}

package transport

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Connection settings of Dial.
const (
	dialTimeout   = 5 * time.Second
	reconnectWait = 250 * time.Millisecond
	// subPendingBytes bounds the bytes NATS queues for one subscription
	// whose handler falls behind (nats.go's default is 64 MiB, less than a
	// round of 64 updates of a 480k-parameter model).
	subPendingBytes = 1 << 30
)

// Conn is a connection to a NATS server that speaks the fotsim protocol.
// Publish, Subscribe, Flush, Stats and Close may be called from any
// goroutine.
type Conn struct {
	nc  *nats.Conn
	pub uint64 // publisher id in chunk headers

	mu  sync.Mutex // guards buf and seq
	buf []byte     // encode buffer, reused by Publish
	seq uint64     // sequence number of the last chunked message

	out, in atomic.Int64

	subsMu sync.Mutex
	subs   map[*nats.Subscription]*subscription

	hl *health // disconnects, reconnects, Done and Err (health.go)
}

func newConn() *Conn {
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return &Conn{
		pub:  binary.LittleEndian.Uint64(id[:]),
		buf:  make([]byte, headroom, 4096),
		subs: make(map[*nats.Subscription]*subscription),
	}
}

// Dial connects to the NATS server at url (for example "nats://host:4222",
// or several comma-separated URLs, such as the nodes of a cluster) under
// the connection name name, with DefaultTimeout (see DialWith).
func Dial(url, name string) (*Conn, error) {
	return DialWith(url, name, DialOptions{})
}

// DialWith is Dial with options. The connection reconnects on its own
// after losing its server, to any server of url (and those the cluster
// advertises), buffering up to 8 MiB of publishes meanwhile; when it stays
// disconnected for longer than opts.Timeout, it gives up: Done is closed
// and Err names the URL and how long it was down. When the server refuses
// one of its publishes or subscriptions (the user's permissions do not
// allow the subject), it gives up too, at once: Err is a *PermissionError
// naming the user and the subject. Errors wrap ErrConnect (or ErrOptions)
// and name the URL, never its password.
func DialWith(url, name string, opts DialOptions) (*Conn, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	timeout := cmp.Or(opts.Timeout, DefaultTimeout)
	c := newConn()
	c.hl = newHealth(url, timeout)
	url, _ = WithPassword(url, opts.Password)
	var extra []nats.Option
	if opts.CAFile != "" {
		cfg, err := tlsConfig(opts.CAFile)
		if err != nil {
			return nil, err
		}
		extra = append(extra, nats.Secure(cfg))
	}
	nc, err := nats.Connect(url, append(append(c.hl.options(), extra...),
		nats.Name(name),
		nats.Timeout(dialTimeout),
		nats.ReconnectWait(reconnectWait),
		nats.MaxReconnects(-1), // the health's timeout gives up instead
		// A server that vanishes without closing the socket is noticed
		// after two unanswered pings.
		nats.PingInterval(min(max(timeout/2, time.Second), 2*time.Minute)),
		nats.ErrorHandler(c.asyncError),
	)...)
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %w", ErrConnect, c.hl.urls, connectHint(err, opts))
	}
	c.nc = nc
	c.hl.connected(nc)
	return c, nil
}

// MaxPayload returns the largest NATS payload the server accepts; Publish
// chunks messages that do not fit.
func (c *Conn) MaxPayload() int { return int(c.nc.MaxPayload()) }

// Publish encodes m and publishes it on subject. It returns the size of the
// encoded message (m.EncodedLen()) in bytes.
//
// A message that fits in the server's max payload (with its 4-byte frame
// header) goes out as one NATS message; a larger one is split into chunks of at
// most max payload bytes, each with a 29-byte chunk header, which the
// receiving Subscribe puts back together. Publish is safe for concurrent use
// (publishes on one Conn are serialised) and reuses one encode buffer, so
// publishing allocates only when a message is larger than any before it.
// Publishing hands the bytes to the NATS client's buffer; call Flush to wait
// until the server has them.
func (c *Conn) Publish(subject string, m *Message) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf, err := m.AppendBinary(c.buf[:headroom])
	if err != nil {
		return 0, fmt.Errorf("transport: publish %s on %q: %w", m.Kind, subject, err)
	}
	c.buf = buf
	return c.publish(subject, m.Kind, buf)
}

// publish sends the message encoded in buf[headroom:], of the given kind,
// as one whole frame or in chunks. c.mu must be held.
//
// A whole frame's header goes in the last wholeHdrLen bytes of the
// headroom; a chunked message writes each chunk's header over the bytes
// just before that chunk, which belong to the previous chunk, already
// copied out by NATS.
func (c *Conn) publish(subject string, kind Kind, buf []byte) (int, error) {
	size := len(buf) - headroom
	maxPayload := c.MaxPayload()
	if wholeHdrLen+size <= maxPayload {
		frame := buf[headroom-wholeHdrLen:]
		frame[0], frame[1], frame[2], frame[3] = frameWhole, 0, 0, 0
		if err := c.natsPublish(subject, frame); err != nil {
			return 0, fmt.Errorf("transport: publish %s on %q: %w", kind, subject, natsErr(err))
		}
		c.out.Add(int64(len(frame)))
		return size, nil
	}
	if size > maxMessageBytes {
		return 0, fmt.Errorf("%w: publish %s on %q: %d bytes, max %d", ErrTooLarge, kind, subject, size, maxMessageBytes)
	}
	body := maxPayload - chunkHdrLen
	if body < 1 {
		return 0, fmt.Errorf("%w: publish on %q: server max payload %d bytes leaves no room for chunks", ErrTooLarge, subject, maxPayload)
	}
	c.seq++
	h := chunkHeader{pub: c.pub, seq: c.seq, count: uint32((size + body - 1) / body), total: uint32(size)}
	for i := range int(h.count) {
		off := headroom + i*body
		end := min(off+body, len(buf))
		h.index = uint32(i)
		putChunkHeader(buf[off-chunkHdrLen:], h)
		if err := c.natsPublish(subject, buf[off-chunkHdrLen:end]); err != nil {
			return 0, fmt.Errorf("transport: publish %s on %q: chunk %d of %d: %w", kind, subject, i, h.count, natsErr(err))
		}
		c.out.Add(int64(end - off + chunkHdrLen))
	}
	return size, nil
}

// PublishRaw publishes data on subject as it is: no frame header, no
// chunking, not a Message (Subscribe rejects it with ErrFrame), for
// payloads that other programs read, such as the JSON documents on
// Subjects.Metrics. data must fit in the server's max payload (ErrTooLarge
// otherwise). Like Publish, it hands the bytes to the NATS client's buffer
// and is safe for concurrent use; it does not wait for Publish's lock.
func (c *Conn) PublishRaw(subject string, data []byte) error {
	if len(data) > c.MaxPayload() {
		return fmt.Errorf("%w: publish raw on %q: %d bytes, server max payload %d", ErrTooLarge, subject, len(data), c.MaxPayload())
	}
	if err := c.natsPublish(subject, data); err != nil {
		return fmt.Errorf("transport: publish raw on %q: %w", subject, natsErr(err))
	}
	c.out.Add(int64(len(data)))
	return nil
}

// SubscribeRaw calls fn with the subject and the payload, as published, of
// every NATS message on subject (wildcards allowed), until the returned
// function unsubscribes: the receiving side of PublishRaw. fn owns data.
// Calls come from the subscription's delivery goroutine, one at a time;
// when fn falls behind by NATS's default pending limits, NATS drops
// messages.
func (c *Conn) SubscribeRaw(subject string, fn func(subject string, data []byte)) (func() error, error) {
	sub, err := c.nc.Subscribe(subject, func(msg *nats.Msg) {
		c.in.Add(int64(len(msg.Data)))
		fn(msg.Subject, msg.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("transport: subscribe raw %q: %w", subject, natsErr(err))
	}
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				uerr = fmt.Errorf("transport: unsubscribe %q: %w", subject, err)
			}
		})
		return uerr
	}, nil
}

// Subscribe calls fn for every message published on subject (NATS wildcards
// allowed) until the returned function unsubscribes.
//
// For every message that arrives whole and valid, fn gets a newly allocated
// *Message that it owns (it may keep it) and a nil error. For anything
// rejected, fn gets nil and an error that wraps the reason's sentinel
// (ErrFrame, a Decode sentinel such as ErrVersion or ErrNonFinite,
// ErrIncomplete for a chunked message dropped before it completed,
// ErrTooLarge, or ErrDropped when NATS discarded messages because fn fell
// behind) and names the subject; the caller decides whether to count, log or
// stop.
//
// fn is called from the subscription's NATS delivery goroutine, one call at a
// time per subscription (never concurrently with itself), in the order the
// messages arrived; different subscriptions run concurrently. A slow fn
// delays that subscription's later messages: NATS queues up to 1 GiB for it,
// then drops and reports ErrDropped.
func (c *Conn) Subscribe(subject string, fn func(m *Message, err error)) (func() error, error) {
	s := &subscription{c: c, subject: subject, fn: fn, asm: newAssembler()}
	sub, err := c.nc.Subscribe(subject, s.handle)
	if err != nil {
		return nil, fmt.Errorf("transport: subscribe %q: %w", subject, natsErr(err))
	}
	if err := sub.SetPendingLimits(-1, subPendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("transport: subscribe %q: %w", subject, err)
	}
	c.subsMu.Lock()
	c.subs[sub] = s
	c.subsMu.Unlock()
	var once sync.Once
	var uerr error
	unsubscribe := func() error {
		once.Do(func() {
			c.subsMu.Lock()
			delete(c.subs, sub)
			c.subsMu.Unlock()
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				uerr = fmt.Errorf("transport: unsubscribe %q: %w", subject, err)
			}
		})
		return uerr
	}
	return unsubscribe, nil
}

// Flush waits until the server has processed everything published so far.
// While the connection is reconnecting, it waits for the reconnect (what
// was published meanwhile goes out then), or fails with Err once the
// connection is given up.
func (c *Conn) Flush() error {
	for {
		err := c.nc.Flush()
		if err == nil {
			return nil
		}
		if c.nc.IsClosed() || !c.reconnected() {
			if lost := c.Err(); lost != nil {
				err = lost
			}
			return fmt.Errorf("transport: flush: %w", natsErr(err))
		}
	}
}

// Close closes the connection (after flushing what is buffered to the
// socket). Subscriptions end; it is safe to call more than once.
func (c *Conn) Close() {
	c.hl.close()
	c.nc.Close()
}

// Stats returns the payload bytes this Conn has published and received so
// far, frame and chunk headers included (NATS protocol overhead excluded).
func (c *Conn) Stats() (bytesOut, bytesIn int64) { return c.out.Load(), c.in.Load() }

// natsErr adds ErrClosed to errors that say the connection is closed.
func natsErr(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// asyncError receives NATS's asynchronous errors (slow consumer, permission
// violations) and reports those about a subscription to its handler.
// A permissions violation gives the connection up (health.refused: Done,
// Err), then a subscription the server's permissions refuse gets its
// violation too, found by the subject the server names.
func (c *Conn) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		c.hl.refused(err)
	}
	if sub == nil {
		if !errors.Is(err, nats.ErrPermissionViolation) {
			return
		}
		c.subsMu.Lock()
		var refused []*subscription
		for _, s := range c.subs {
			if strings.Contains(err.Error(), `Subscription to "`+s.subject+`"`) {
				refused = append(refused, s)
			}
		}
		c.subsMu.Unlock()
		for _, s := range refused {
			s.deliver(nil, fmt.Errorf("transport: subscription %q: %w", s.subject, err))
		}
		return
	}
	c.subsMu.Lock()
	s := c.subs[sub]
	c.subsMu.Unlock()
	if s == nil {
		return
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		err = fmt.Errorf("%w: %w", ErrDropped, err)
	}
	s.deliver(nil, fmt.Errorf("transport: subscription %q: %w", s.subject, err))
}

// subscription is one Subscribe call's state.
type subscription struct {
	c       *Conn
	subject string
	fn      func(*Message, error)
	asm     *assembler // used only from the delivery goroutine
	mu      sync.Mutex // serialises fn between delivery and asyncError
}

func (s *subscription) deliver(m *Message, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fn(m, err)
}

// handle is the NATS message handler.
func (s *subscription) handle(msg *nats.Msg) {
	data := msg.Data
	s.c.in.Add(int64(len(data)))
	if len(data) == 0 {
		s.deliver(nil, fmt.Errorf("transport: receive on %q: %w: empty payload", msg.Subject, ErrFrame))
		return
	}
	switch data[0] {
	case frameWhole:
		if len(data) < wholeHdrLen || data[1]|data[2]|data[3] != 0 {
			s.deliver(nil, fmt.Errorf("transport: receive on %q: %w: whole frame header % x", msg.Subject, ErrFrame, data[:min(len(data), wholeHdrLen)]))
			return
		}
		// NATS hands every subscription message a payload of its own.
		s.decode(msg.Subject, data[wholeHdrLen:], DecodeShared)
	case frameWholeV1:
		s.decode(msg.Subject, data[1:], Decode)
	case frameChunk:
		h, body, err := parseChunk(data)
		if err != nil {
			s.deliver(nil, fmt.Errorf("transport: receive on %q: %w", msg.Subject, err))
			return
		}
		whole, errs := s.asm.add(h, body, time.Now())
		for _, err := range errs {
			s.deliver(nil, fmt.Errorf("transport: receive on %q: %w", msg.Subject, err))
		}
		if whole != nil {
			// The message keeps the reassembly buffer (no release).
			s.decode(msg.Subject, whole, DecodeShared)
		}
	default:
		s.deliver(nil, fmt.Errorf("transport: receive on %q: %w: unknown frame type 0x%02x", msg.Subject, ErrFrame, data[0]))
	}
}

func (s *subscription) decode(subject string, b []byte, decode func([]byte, *Message) error) {
	m := new(Message)
	if err := decode(b, m); err != nil {
		s.deliver(nil, fmt.Errorf("transport: receive on %q (%d bytes): %w", subject, len(b), err))
		return
	}
	s.deliver(m, nil)
}

// Package transporttest provides an in-memory message bus for testing the
// code that talks over package transport (the server's and the client
// hosts' small Transport interfaces) without a NATS server.
//
//	bus := transporttest.NewBus()
//	srv, _ := server.New(cfg, model, eval, bus)
//	host, _ := client.NewHost(hcfg, model, shards, bus)
package transporttest

import (
	"fmt"
	"slices"
	"sync"

	"github.com/fotsim/fotsim/transport"
)

// Bus is an in-memory transport. Publish encodes the message with the real
// codec, logs it, and hands every subscriber of the subject its own decoded
// copy, synchronously, so the publisher's buffers may be reused as soon as
// Publish returns (as with transport.Conn). A subscription's callback runs
// one call at a time.
type Bus struct {
	// Drop, when set, discards a message before delivery (it is still
	// logged and its size returned, as a message lost on the way).
	Drop func(subject string, m *transport.Message) bool

	mu   sync.Mutex
	subs map[string][]*sub
	log  []Sent
}

// Sent is one published message: its subject, encoded size and content.
type Sent struct {
	Subject string
	Size    int
	Msg     *transport.Message
}

type sub struct {
	mu   sync.Mutex
	fn   func(*transport.Message, error)
	dead bool
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[string][]*sub{}} }

// Publish implements the Transport interfaces.
func (b *Bus) Publish(subject string, m *transport.Message) (int, error) {
	buf, err := m.AppendBinary(nil)
	if err != nil {
		return 0, err
	}
	return b.deliver(subject, buf)
}

// PublishFrame implements the client host's Transport interface: it
// publishes the message encoded in f as Publish does.
func (b *Bus) PublishFrame(subject string, f *transport.Frame) (int, error) {
	if f.Len() == 0 {
		return 0, fmt.Errorf("%w: publish on %q: empty frame", transport.ErrLength, subject)
	}
	return b.deliver(subject, slices.Clone(f.Bytes()))
}

// deliver logs the encoded message buf and hands each subscriber of subject
// its own decoded copy.
func (b *Bus) deliver(subject string, buf []byte) (int, error) {
	logged := new(transport.Message)
	if err := transport.Decode(buf, logged); err != nil {
		return 0, err
	}
	b.mu.Lock()
	b.log = append(b.log, Sent{subject, len(buf), logged})
	subs := slices.Clone(b.subs[subject])
	drop := b.Drop
	b.mu.Unlock()
	if drop != nil && drop(subject, logged) {
		return len(buf), nil
	}
	for _, s := range subs {
		c := new(transport.Message)
		if err := transport.Decode(buf, c); err != nil {
			return 0, err
		}
		s.deliver(c, nil)
	}
	return len(buf), nil
}

// Inject delivers (nil, err) to every subscriber of subject, as a
// transport does for a message it could not decode.
func (b *Bus) Inject(subject string, err error) {
	b.mu.Lock()
	subs := slices.Clone(b.subs[subject])
	b.mu.Unlock()
	for _, s := range subs {
		s.deliver(nil, err)
	}
}

func (s *sub) deliver(m *transport.Message, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dead {
		s.fn(m, err)
	}
}

// Subscribe implements the Transport interfaces.
func (b *Bus) Subscribe(subject string, fn func(*transport.Message, error)) (func() error, error) {
	s := &sub{fn: fn}
	b.mu.Lock()
	b.subs[subject] = append(b.subs[subject], s)
	b.mu.Unlock()
	return func() error {
		b.mu.Lock()
		b.subs[subject] = slices.DeleteFunc(b.subs[subject], func(x *sub) bool { return x == s })
		b.mu.Unlock()
		s.mu.Lock()
		s.dead = true
		s.mu.Unlock()
		return nil
	}, nil
}

// Flush implements the Transport interfaces; delivery is synchronous.
func (b *Bus) Flush() error { return nil }

// Sent returns the messages published on subject so far, in order.
func (b *Bus) Sent(subject string) []Sent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Sent
	for _, s := range b.log {
		if s.Subject == subject {
			out = append(out, s)
		}
	}
	return out
}

package client

import (
	"github.com/fotsim/fotsim/transport"
)

// publisher sends a round's encoded updates from a goroutine of its own,
// so that a worker goes on to its next client while its last update is
// on its way. A publish blocks until the transport has taken the bytes:
// through the embedded server's in-process pipe, until nats-server has
// read and copied them; over TCP, until the socket has taken them. Off
// the worker, that time overlaps training wherever a core or the network
// has room for it. The order in which updates arrive does not matter:
// the server aggregates in client-id order.
//
// The frames go round between the workers and the publisher through the
// host's free list (Host.frames): a worker takes a frame, writes its
// update into it and queues it; once published, the frame goes back. A
// worker that finds no free frame waits for one, so at most
// 2 x Workers updates are encoded at a time.
type publisher struct {
	q    chan *transport.Frame
	done chan error // the first publish error, once every frame is sent
}

// startPublisher starts publishing, on the host's update subject, the
// frames queued with send; end waits for them and returns the first error.
func (h *Host) startPublisher() *publisher {
	p := &publisher{q: make(chan *transport.Frame, cap(h.frames)), done: make(chan error, 1)}
	go func() {
		var first error
		for f := range p.q {
			if first == nil {
				_, first = h.tr.PublishFrame(h.cfg.Subjects.Update, f)
			}
			h.frames <- f
		}
		p.done <- first
	}()
	return p
}

// send queues f, a frame taken from the host's free list, for publishing.
func (p *publisher) send(f *transport.Frame) { p.q <- f }

// end waits until every queued frame is published and returns the first
// publish error; no send may follow.
func (p *publisher) end() error {
	close(p.q)
	return <-p.done
}

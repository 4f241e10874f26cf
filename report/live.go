package report

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Limits of a Hub.
const (
	// MaxHistory is the number of documents a Hub keeps to replay to pages
	// that connect late; older ones are forgotten.
	MaxHistory = 100_000
	// subscriberQueue is how far one page's stream may fall behind before
	// the Hub drops it (the page's EventSource reconnects and is replayed
	// the history; the live page ignores rounds it already has).
	subscriberQueue = 4096
	// heartbeat keeps idle streams open through proxies.
	heartbeat = 15 * time.Second
)

// Hub fans metrics documents out to live pages as Server-Sent Events. It
// is an http.Handler (the event stream); Publish and Close may be called
// from any goroutine.
type Hub struct {
	mu      sync.Mutex
	history [][]byte
	start   int // history[start:] are the kept documents (a sliding window)
	subs    map[chan []byte]struct{}
	closed  bool
}

// NewHub returns an empty, open hub.
func NewHub() *Hub { return &Hub{subs: map[chan []byte]struct{}{}} }

// Publish sends one JSON document to every connected page and keeps it for
// later ones. A document that is not valid JSON is dropped; one that
// spans lines is compacted. Publish never blocks: a page that has fallen
// too far behind is disconnected instead (it reconnects). After Close it
// does nothing.
func (h *Hub) Publish(doc []byte) {
	if !json.Valid(doc) {
		return
	}
	if bytes.ContainsAny(doc, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, doc) != nil {
			return
		}
		doc = b.Bytes()
	} else {
		doc = bytes.Clone(doc)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.history = append(h.history, doc)
	if len(h.history)-h.start > MaxHistory {
		h.history[h.start] = nil
		h.start++
		if h.start > MaxHistory { // compact the window now and then
			h.history = append([][]byte(nil), h.history[h.start:]...)
			h.start = 0
		}
	}
	for ch := range h.subs {
		select {
		case ch <- doc:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Len returns the number of documents kept for replay.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.history) - h.start
}

// Close ends every stream with an "end" event, which tells the live page
// that the source is done; pages that connect later get the history and
// the same event.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

func (h *Hub) subscribe() (ch chan []byte, history [][]byte, closed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	history = append([][]byte(nil), h.history[h.start:]...)
	if h.closed {
		return nil, history, true
	}
	ch = make(chan []byte, subscriberQueue)
	h.subs[ch] = struct{}{}
	return ch, history, false
}

func (h *Hub) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[ch]; ok {
		delete(h.subs, ch)
		close(ch)
	}
}

func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// ServeHTTP streams the documents as Server-Sent Events: every kept
// document first, then each new one as it is published, one "data:" line
// each; "event: end" when the hub is closed.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	ch, history, closed := h.subscribe()
	if ch != nil {
		defer h.unsubscribe(ch)
	}
	var buf bytes.Buffer
	buf.WriteString("retry: 1000\n\n")
	for _, d := range history {
		writeEvent(&buf, d)
		if buf.Len() > 64<<10 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			buf.Reset()
		}
	}
	if closed {
		buf.WriteString("event: end\ndata: {}\n\n")
	}
	if _, err := w.Write(buf.Bytes()); err != nil || rc.Flush() != nil || closed {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case d, ok := <-ch:
			buf.Reset()
			if !ok {
				if h.isClosed() {
					buf.WriteString("event: end\ndata: {}\n\n")
					_, _ = w.Write(buf.Bytes())
					_ = rc.Flush()
				}
				return // closed, or dropped for falling behind: the page reconnects
			}
			writeEvent(&buf, d)
			for more := true; more && buf.Len() < 64<<10; { // batch what is already queued
				select {
				case d, ok = <-ch:
					if !ok {
						more = false
						break
					}
					writeEvent(&buf, d)
				default:
					more = false
				}
			}
			if _, err := w.Write(buf.Bytes()); err != nil || rc.Flush() != nil {
				return
			}
			if !ok {
				if h.isClosed() {
					_, _ = w.Write([]byte("event: end\ndata: {}\n\n"))
					_ = rc.Flush()
				}
				return
			}
		case <-tick.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

func writeEvent(b *bytes.Buffer, doc []byte) {
	b.WriteString("data: ")
	b.Write(doc)
	b.WriteString("\n\n")
}

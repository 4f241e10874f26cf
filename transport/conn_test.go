package transport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// waitTimeout bounds every wait for a message in these tests.
const waitTimeout = 10 * time.Second

func startEmbedded(t testing.TB, opts EmbeddedOptions) *Embedded {
	t.Helper()
	e, err := StartEmbeddedWith(opts)
	if err != nil {
		t.Fatalf("StartEmbeddedWith(%+v): %v", opts, err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

func connect(t testing.TB, e *Embedded, name string) *Conn {
	t.Helper()
	c, err := e.Connect(name)
	if err != nil {
		t.Fatalf("Connect(%q): %v", name, err)
	}
	t.Cleanup(c.Close)
	return c
}

func dial(t testing.TB, url, name string) *Conn {
	t.Helper()
	c, err := Dial(url, name)
	if err != nil {
		t.Fatalf("Dial(%q): %v", url, err)
	}
	t.Cleanup(c.Close)
	return c
}

// delivery is one call of a Subscribe handler.
type delivery struct {
	m   *Message
	err error
}

// collect subscribes to subject and returns the channel of deliveries.
func collect(t testing.TB, c *Conn, subject string) <-chan delivery {
	t.Helper()
	ch := make(chan delivery, 1024)
	unsub, err := c.Subscribe(subject, func(m *Message, err error) { ch <- delivery{m, err} })
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", subject, err)
	}
	t.Cleanup(func() { _ = unsub() })
	if err := c.Flush(); err != nil { // the subscription is known to the server
		t.Fatalf("Flush: %v", err)
	}
	return ch
}

func next(t testing.TB, ch <-chan delivery) delivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("no message after %v", waitTimeout)
		return delivery{}
	}
}

func TestPublishSubscribeInProcess(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	srv, host := connect(t, e, "server"), connect(t, e, "host")
	if got, want := srv.MaxPayload(), DefaultMaxPayload; got != want {
		t.Fatalf("max payload: got %d, want %d", got, want)
	}
	subj := SubjectsFor("run-1")
	ch := collect(t, srv, subj.Update)
	var sent int64
	for _, tc := range testMessages() {
		n, err := host.Publish(subj.Update, tc.m)
		if err != nil {
			t.Fatalf("%s: Publish: %v", tc.name, err)
		}
		if n != tc.m.EncodedLen() {
			t.Fatalf("%s: Publish returned %d, want %d", tc.name, n, tc.m.EncodedLen())
		}
		sent += int64(n) + wholeHdrLen
		d := next(t, ch)
		if d.err != nil {
			t.Fatalf("%s: received error %v", tc.name, d.err)
		}
		if diff := sameMessage(d.m, tc.m); diff != "" {
			t.Fatalf("%s: %s", tc.name, diff)
		}
	}
	if out, _ := host.Stats(); out != sent {
		t.Fatalf("host bytes out: got %d, want %d", out, sent)
	}
	if _, in := srv.Stats(); in != sent {
		t.Fatalf("server bytes in: got %d, want %d", in, sent)
	}
}

// TestChunkedTwoPublishers sends messages many times the max payload from
// two connections at once; every one must arrive intact.
func TestChunkedTwoPublishers(t *testing.T) {
	const (
		maxPayload = 1024
		perPub     = 4
		values     = 30000 // 120 kB of tensor data: 121 chunks, several socket writes
	)
	e := startEmbedded(t, EmbeddedOptions{MaxPayload: maxPayload})
	recv := connect(t, e, "server")
	pubs := []*Conn{connect(t, e, "host-a"), dial(t, e.URL(), "host-b")}
	ch := collect(t, recv, "fotsim.chunks.update")
	// Watch the raw frames to report how often the two publishers' chunks
	// interleaved (NATS decides; the test passes either way).
	var (
		obsMu       sync.Mutex
		lastPub     uint64
		switches    int
		midMessages int
	)
	obs, err := recv.nc.Subscribe("fotsim.chunks.update", func(msg *nats.Msg) {
		h, _, err := parseChunk(msg.Data)
		if err != nil {
			return
		}
		obsMu.Lock()
		defer obsMu.Unlock()
		if lastPub != 0 && h.pub != lastPub {
			switches++
			if h.index != 0 {
				midMessages++
			}
		}
		lastPub = h.pub
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = obs.Unsubscribe()
		obsMu.Lock()
		t.Logf("publisher switches: %d, of which in the middle of a message: %d", switches, midMessages)
		obsMu.Unlock()
	}()

	want := map[[2]int32]*Message{}
	msgs := make([][]*Message, len(pubs))
	r := rand.New(rand.NewPCG(11, 12))
	for p := range pubs {
		for k := range perPub {
			m := &Message{
				Kind: KindUpdate, Round: int32(k), Client: int32(p), N: int64(100 * k),
				Scalars: []Scalar{{"loss", float64(k)}},
				Tensors: []Tensor{
					{Name: "delta", Rows: values / 10, Cols: 10, Data: randData(r, values)},
					{Name: "bias", Rows: 7, Cols: 1, Data: randData(r, 7)},
				},
			}
			msgs[p] = append(msgs[p], m)
			want[[2]int32{m.Client, m.Round}] = m
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(pubs))
	for p, c := range pubs {
		wg.Go(func() {
			for _, m := range msgs[p] {
				n, err := c.Publish("fotsim.chunks.update", m)
				if err != nil {
					errs <- err
					return
				}
				if n <= maxPayload {
					errs <- fmt.Errorf("message of %d bytes is not larger than the max payload %d", n, maxPayload)
					return
				}
			}
			errs <- c.Flush()
		})
	}
	wg.Wait()
	for range pubs {
		if err := <-errs; err != nil {
			t.Fatalf("publisher: %v", err)
		}
	}
	for range len(want) {
		d := next(t, ch)
		if d.err != nil {
			t.Fatalf("received error %v", d.err)
		}
		key := [2]int32{d.m.Client, d.m.Round}
		w, ok := want[key]
		if !ok {
			t.Fatalf("unexpected or repeated message client %d round %d", key[0], key[1])
		}
		if diff := sameMessage(d.m, w); diff != "" {
			t.Fatalf("client %d round %d: %s", key[0], key[1], diff)
		}
		delete(want, key)
	}
	for p, c := range pubs {
		out, _ := c.Stats()
		enc := 0
		for _, m := range msgs[p] {
			enc += m.EncodedLen()
		}
		if out <= int64(enc) {
			t.Fatalf("publisher %d bytes out: got %d, want more than the %d encoded bytes", p, out, enc)
		}
	}
}

// TestSubscribeRejects publishes raw payloads that are not valid frames; each
// must reach the handler as an error wrapping the right sentinel, and a valid
// message afterwards must still get through.
func TestSubscribeRejects(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{MaxPayload: 512})
	srv, host := connect(t, e, "server"), connect(t, e, "host")
	const subject = "fotsim.rejects.update"
	ch := collect(t, srv, subject)

	good, err := base().AppendBinary([]byte{frameWhole, 0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	damaged := func(off int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[wholeHdrLen+off] = v
		return b
	}
	// What a wire-version-1 sender published: frame type 0x01, then a
	// version-1 message.
	v1 := append([]byte{frameWholeV1}, good[wholeHdrLen:]...)
	v1[1+4] = 1
	chunk := func(h chunkHeader, body []byte) []byte {
		b := make([]byte, chunkHdrLen, chunkHdrLen+len(body))
		putChunkHeader(b, h)
		return append(b, body...)
	}
	tests := []struct {
		name    string
		payload []byte
		want    error
	}{
		{"empty payload", []byte{}, ErrFrame},
		{"unknown frame type", append([]byte{0x7f}, good[1:]...), ErrFrame},
		{"raw message without frame", good[wholeHdrLen:], ErrFrame},
		{"short whole frame", good[:2], ErrFrame},
		{"non-zero whole frame header", damaged(-2, 7), ErrFrame},
		{"bad version", damaged(4, 9), ErrVersion},
		{"version 1 sender", v1, ErrVersion},
		{"bad kind", damaged(5, 0), ErrKind},
		{"NaN", func() []byte {
			b := append([]byte(nil), good...)
			le.PutUint32(b[wholeHdrLen+offData:], 0x7fc00000)
			return b
		}(), ErrNonFinite},
		{"truncated", good[:len(good)-3], ErrTruncated},
		{"short chunk header", []byte{frameChunk, 1, 2, 3}, ErrFrame},
		{"chunk index past count", chunk(chunkHeader{pub: 1, seq: 1, index: 2, count: 2, total: 10}, []byte{1}), ErrFrame},
		{"chunk larger than total", chunk(chunkHeader{pub: 1, seq: 1, index: 0, count: 1, total: 2}, []byte{1, 2, 3}), ErrFrame},
		{"chunked message too large", chunk(chunkHeader{pub: 1, seq: 1, index: 0, count: 2, total: maxMessageBytes + 1}, []byte{1}), ErrTooLarge},
		{"reassembled garbage", chunk(chunkHeader{pub: 1, seq: 1, index: 0, count: 1, total: 3}, []byte("abc")), ErrMagic},
	}
	for _, tc := range tests {
		if err := host.nc.Publish(subject, tc.payload); err != nil {
			t.Fatalf("%s: publish: %v", tc.name, err)
		}
		d := next(t, ch)
		if d.m != nil || !errors.Is(d.err, tc.want) {
			t.Fatalf("%s: got message %v, error %v; want error %v", tc.name, d.m != nil, d.err, tc.want)
		}
		if !strings.Contains(d.err.Error(), subject) {
			t.Fatalf("%s: error %q does not name the subject %q", tc.name, d.err, subject)
		}
	}
	// An incomplete chunked message is reported when the next one from the
	// same publisher starts, which then completes.
	big := &Message{Kind: KindUpdate, Tensors: []Tensor{{Name: "x", Rows: 400, Cols: 1, Data: randData(rand.New(rand.NewPCG(1, 1)), 400)}}}
	enc, err := big.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := host.nc.Publish(subject, chunk(chunkHeader{pub: 77, seq: 1, index: 0, count: 4, total: uint32(len(enc))}, enc[:400])); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Publish(subject, big); err != nil {
		t.Fatal(err)
	}
	host.pub = 77 // same publisher id as the abandoned message
	if _, err := host.Publish(subject, big); err != nil {
		t.Fatal(err)
	}
	for _, want := range []error{nil, ErrIncomplete, nil} {
		d := next(t, ch)
		if !errors.Is(d.err, want) || (want == nil) != (d.m != nil) {
			t.Fatalf("chunked: got error %v (message %v), want %v", d.err, d.m != nil, want)
		}
		if d.m != nil {
			if diff := sameMessage(d.m, big); diff != "" {
				t.Fatalf("chunked: %s", diff)
			}
		}
	}
}

func TestDialExternal(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	if !strings.HasPrefix(e.URL(), "nats://127.0.0.1:") || strings.HasSuffix(e.URL(), ":-1") || strings.HasSuffix(e.URL(), ":0") {
		t.Fatalf("URL: got %q, want nats://127.0.0.1:<port>", e.URL())
	}
	remote := dial(t, e.URL(), "remote-host")
	local := connect(t, e, "server")
	subj := SubjectsFor("tcp run")
	fromRemote := collect(t, local, subj.Update)
	fromLocal := collect(t, remote, subj.Round)

	m := modelMessage(rand.New(rand.NewPCG(13, 14)), 1<<18) // 1 MiB: over NATS's default, under ours
	if _, err := local.Publish(subj.Round, m); err != nil {
		t.Fatal(err)
	}
	d := next(t, fromLocal)
	if d.err != nil {
		t.Fatalf("remote received error %v", d.err)
	}
	if diff := sameMessage(d.m, m); diff != "" {
		t.Fatalf("round over TCP: %s", diff)
	}
	up := &Message{Kind: KindUpdate, Round: m.Round, Client: 3, N: 60, Tensors: d.m.Tensors}
	if _, err := remote.Publish(subj.Update, up); err != nil {
		t.Fatal(err)
	}
	d = next(t, fromRemote)
	if d.err != nil {
		t.Fatalf("server received error %v", d.err)
	}
	if diff := sameMessage(d.m, up); diff != "" {
		t.Fatalf("update over TCP: %s", diff)
	}
}

func TestDialBadURL(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	// A port that was just free: nothing listens on it.
	url := e.URL()
	e.Shutdown()
	for _, u := range []string{url, "nats://no-such-host.invalid:4222", "http://%zz"} {
		c, err := Dial(u, "x")
		if err == nil {
			c.Close()
			t.Fatalf("Dial(%q): got no error", u)
		}
		if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), u) {
			t.Fatalf("Dial(%q): got %v, want an error wrapping %v that names the URL", u, err, ErrConnect)
		}
	}
}

func TestEmbeddedOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts EmbeddedOptions
		ok   bool
	}{
		{"zero", EmbeddedOptions{}, true},
		{"default", DefaultEmbeddedOptions(), true},
		{"small payload", EmbeddedOptions{MaxPayload: minMaxPayload}, true},
		{"payload too small", EmbeddedOptions{MaxPayload: minMaxPayload - 1}, false},
		{"payload too large", EmbeddedOptions{MaxPayload: maxMaxPayload + 1}, false},
		{"negative port", EmbeddedOptions{Port: -1}, false},
		{"port too large", EmbeddedOptions{Port: 70000}, false},
	}
	for _, tc := range tests {
		err := tc.opts.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrOptions)) {
			t.Fatalf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
		if !tc.ok {
			if _, err := StartEmbeddedWith(tc.opts); !errors.Is(err, ErrOptions) {
				t.Fatalf("%s: StartEmbeddedWith: got %v, want %v", tc.name, err, ErrOptions)
			}
		}
	}
}

func TestClosed(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	c := connect(t, e, "c")
	unsub, err := c.Subscribe("fotsim.x.round", func(*Message, error) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := unsub(); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if err := unsub(); err != nil {
		t.Fatalf("second unsubscribe: %v", err)
	}
	c.Close()
	c.Close()
	if _, err := c.Publish("fotsim.x.round", &Message{Kind: KindStop}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: got %v, want %v", err, ErrClosed)
	}
	if _, err := c.Subscribe("fotsim.x.round", func(*Message, error) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: got %v, want %v", err, ErrClosed)
	}
	if _, err := c.Publish("fotsim.x.round", &Message{}); !errors.Is(err, ErrKind) {
		t.Fatalf("Publish of an invalid message: got %v, want %v", err, ErrKind)
	}
	e.Shutdown()
	if _, err := e.Connect("late"); !errors.Is(err, ErrConnect) {
		t.Fatalf("Connect after Shutdown: got %v, want %v", err, ErrConnect)
	}
}

// BenchmarkPublishReceive measures one model broadcast: Publish of a
// 478,410-parameter round message and its arrival, decoded, at a subscriber.
func BenchmarkPublishReceive(b *testing.B) {
	m := modelMessage(rand.New(rand.NewPCG(15, 16)), modelParams)
	for _, bc := range []struct {
		name       string
		maxPayload int
		tcp        bool
		frame      bool // publish from a Frame whose values are written in place
	}{
		{"inproc", 0, false, false},
		{"inproc-frame", 0, false, true},
		{"inproc-chunked-1MiB", 1 << 20, false, false},
		{"tcp", 0, true, false},
		{"tcp-chunked-1MiB", 1 << 20, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := startEmbedded(b, EmbeddedOptions{MaxPayload: bc.maxPayload})
			recv := connect(b, e, "server")
			send := connect(b, e, "host")
			if bc.tcp {
				send = dial(b, e.URL(), "host")
			}
			ch := collect(b, recv, "fotsim.bench.round")
			b.SetBytes(int64(m.EncodedLen()))
			b.ReportAllocs()
			var f Frame
			if err := f.Encode(m); err != nil {
				b.Fatal(err)
			}
			// What a client does each time: write the values (here a copy
			// of m's), then publish them, from its own slice or in place.
			out := *m
			out.Tensors = []Tensor{m.Tensors[0]}
			out.Tensors[0].Data = make([]float32, len(m.Tensors[0].Data))
			if bc.frame {
				out.Tensors[0].Data = f.Values(0)
			}
			for b.Loop() {
				copy(out.Tensors[0].Data, m.Tensors[0].Data)
				var err error
				if bc.frame {
					if err = f.Encode(&out); err == nil {
						_, err = send.PublishFrame("fotsim.bench.round", &f)
					}
				} else {
					_, err = send.Publish("fotsim.bench.round", &out)
				}
				if err != nil {
					b.Fatal(err)
				}
				if d := next(b, ch); d.err != nil {
					b.Fatal(d.err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/msg")
		})
	}
}

// TestSlowConsumer checks that messages NATS drops because a handler fell
// behind are reported to that handler as ErrDropped.
func TestSlowConsumer(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	srv, host := connect(t, e, "server"), connect(t, e, "host")
	const subject = "fotsim.slow.update"
	release := make(chan struct{})
	ch := make(chan delivery, 100)
	unsub, err := srv.Subscribe(subject, func(m *Message, err error) {
		if m != nil && m.Round == 0 {
			<-release // hold the delivery goroutine on the first message
		}
		ch <- delivery{m, err}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unsub() })
	srv.subsMu.Lock()
	for sub := range srv.subs {
		if err := sub.SetPendingLimits(2, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	srv.subsMu.Unlock()
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	const sent = 20
	for i := range sent {
		if _, err := host.Publish(subject, &Message{Kind: KindUpdate, Round: int32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := host.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Flush(); err != nil { // everything has reached srv's client
		t.Fatal(err)
	}
	close(release)
	var got, dropped int
	for got+dropped < sent {
		select {
		case d := <-ch:
			switch {
			case d.err == nil:
				got++
			case errors.Is(d.err, ErrDropped):
				// reported once per episode, not once per message
				dropped = sent - got
			default:
				t.Fatalf("unexpected error %v", d.err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("got %d messages and no drop report after %v", got, waitTimeout)
		}
	}
	if dropped == 0 {
		t.Fatalf("no ErrDropped reported; received %d of %d", got, sent)
	}
}

// TestPublishRaw: raw payloads arrive unchanged at SubscribeRaw (also
// through the metrics wildcard), count in Stats, are rejected by the
// Message subscriber, and a payload over the max payload or on a closed
// connection is an error.
func TestPublishRaw(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{MaxPayload: 512})
	pub, sub := connect(t, e, "pub"), connect(t, e, "sub")
	subj := SubjectsFor("raw-run")
	type raw struct {
		subject string
		data    []byte
	}
	got := make(chan raw, 16)
	unsub, err := sub.SubscribeRaw(MetricsWildcard, func(s string, d []byte) { got <- raw{s, d} })
	if err != nil {
		t.Fatalf("SubscribeRaw: %v", err)
	}
	msgs := collect(t, sub, subj.Metrics)
	payload := []byte(`{"run":"raw-run","round":1,"loss":0.5}`)
	if err := pub.PublishRaw(subj.Metrics, payload); err != nil {
		t.Fatalf("PublishRaw: %v", err)
	}
	select {
	case r := <-got:
		if r.subject != subj.Metrics || string(r.data) != string(payload) {
			t.Fatalf("SubscribeRaw got %q on %q, want %q on %q", r.data, r.subject, payload, subj.Metrics)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no raw message after %v", waitTimeout)
	}
	if d := next(t, msgs); !errors.Is(d.err, ErrFrame) {
		t.Fatalf("Subscribe of a raw payload: got %v, want %v", d.err, ErrFrame)
	}
	if out, _ := pub.Stats(); out != int64(len(payload)) {
		t.Fatalf("bytes out: got %d, want %d", out, len(payload))
	}
	if err := pub.PublishRaw(subj.Metrics, make([]byte, 513)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("PublishRaw of 513 bytes with max payload 512: got %v, want %v", err, ErrTooLarge)
	}
	if err := pub.PublishRaw(subj.Round, nil); err != nil { // empty payloads are fine
		t.Fatalf("PublishRaw(nil): %v", err)
	}
	if err := unsub(); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if err := unsub(); err != nil {
		t.Fatalf("second unsubscribe: %v", err)
	}
	pub.Close()
	if err := pub.PublishRaw(subj.Metrics, payload); !errors.Is(err, ErrClosed) {
		t.Fatalf("PublishRaw after Close: got %v, want %v", err, ErrClosed)
	}
	sub.Close()
	if _, err := sub.SubscribeRaw(MetricsWildcard, func(string, []byte) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SubscribeRaw after Close: got %v, want %v", err, ErrClosed)
	}
}

package transporttest

import (
	"errors"
	"testing"

	"github.com/fotsim/fotsim/transport"
)

func TestBusDeliversCopiesLogsAndDrops(t *testing.T) {
	b := NewBus()
	var got []*transport.Message
	var errs []error
	unsub, err := b.Subscribe("a", func(m *transport.Message, err error) {
		got, errs = append(got, m), append(errs, err)
	})
	if err != nil {
		t.Fatal(err)
	}
	data := []float32{1, 2}
	m := &transport.Message{Kind: transport.KindUpdate, Client: 3, Tensors: []transport.Tensor{{Name: "d", Rows: 1, Cols: 2, Data: data}}}
	n, err := b.Publish("a", m)
	if err != nil || n != m.EncodedLen() {
		t.Fatalf("Publish = %d, %v; want %d, nil", n, err, m.EncodedLen())
	}
	data[0] = 9 // the delivered copy must not change
	if len(got) != 1 || got[0].Client != 3 || got[0].Tensors[0].Data[0] != 1 {
		t.Fatalf("delivered %+v, want a decoded copy of client 3's message", got)
	}
	if _, err := b.Publish("other", m); err != nil {
		t.Fatal(err)
	}
	b.Drop = func(string, *transport.Message) bool { return true }
	if _, err := b.Publish("a", m); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Errorf("a dropped message was delivered")
	}
	if s := b.Sent("a"); len(s) != 2 || s[1].Size != m.EncodedLen() {
		t.Errorf("Sent(a) = %d messages, want 2 (dropped ones are logged)", len(s))
	}
	boom := errors.New("boom")
	b.Inject("a", boom)
	if len(errs) != 2 || !errors.Is(errs[1], boom) || got[1] != nil {
		t.Errorf("Inject: got (%v, %v), want (nil, boom)", got[len(got)-1], errs[len(errs)-1])
	}
	if err := unsub(); err != nil {
		t.Fatal(err)
	}
	b.Drop = nil
	if _, err := b.Publish("a", m); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("delivered after unsubscribe")
	}
}

func TestBusPublishFrame(t *testing.T) {
	b := NewBus()
	var got []*transport.Message
	if _, err := b.Subscribe("a", func(m *transport.Message, err error) { got = append(got, m) }); err != nil {
		t.Fatal(err)
	}
	var f transport.Frame
	if _, err := b.PublishFrame("a", &f); !errors.Is(err, transport.ErrLength) {
		t.Fatalf("PublishFrame of an empty frame: got %v, want %v", err, transport.ErrLength)
	}
	m := &transport.Message{Kind: transport.KindUpdate, Client: 4, Tensors: []transport.Tensor{{Name: "d", Rows: 1, Cols: 2, Data: []float32{5, 6}}}}
	if err := f.Encode(m); err != nil {
		t.Fatal(err)
	}
	n, err := b.PublishFrame("a", &f)
	if err != nil || n != m.EncodedLen() {
		t.Fatalf("PublishFrame = %d, %v; want %d, nil", n, err, m.EncodedLen())
	}
	if v := f.Values(0); v != nil {
		v[0] = 9 // the delivered copy must not change
	}
	if len(got) != 1 || got[0].Client != 4 || got[0].Tensors[0].Data[0] != 5 || got[0].Tensors[0].Data[1] != 6 {
		t.Fatalf("delivered %+v, want a decoded copy of client 4's message", got)
	}
	if s := b.Sent("a"); len(s) != 1 || s[0].Size != m.EncodedLen() {
		t.Errorf("Sent(a) = %d messages, want 1", len(s))
	}
}

package transport_test

import (
	"fmt"

	"github.com/fotsim/fotsim/transport"
)

func ExampleSubjectsFor() {
	s := transport.SubjectsFor("permuted-mnist")
	fmt.Println(s.Round)
	fmt.Println(s.Update)
	// Output:
	// fotsim.permuted-mnist.round
	// fotsim.permuted-mnist.update
}

func ExampleDecode() {
	m := &transport.Message{
		Kind: transport.KindUpdate, Round: 4, Client: 17, N: 600,
		Scalars: []transport.Scalar{{Name: "loss", Value: 0.5}},
		Tensors: []transport.Tensor{{Name: "delta", Rows: 2, Cols: 2, Data: []float32{1, 2, 3, 4}}},
	}
	b, err := m.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	var got transport.Message
	if err := transport.Decode(b, &got); err != nil {
		panic(err)
	}
	fmt.Println(len(b), got.Kind, got.Client, got.Tensors[0].Data)

	b[4] = 4 // a future version
	fmt.Println(transport.Decode(b, &got))
	// Output:
	// 94 update 17 [1 2 3 4]
	// transport: unsupported wire version: got 4, want 3
}

func ExampleEmbedded() {
	e, err := transport.StartEmbedded()
	if err != nil {
		panic(err)
	}
	defer e.Shutdown()
	server, err := e.Connect("server")
	if err != nil {
		panic(err)
	}
	defer server.Close()
	host, err := e.Connect("host-0")
	if err != nil {
		panic(err)
	}
	defer host.Close()

	subj := transport.SubjectsFor("example")
	got := make(chan *transport.Message, 1)
	unsubscribe, err := server.Subscribe(subj.Update, func(m *transport.Message, err error) {
		if err != nil {
			return // a real server counts and logs rejected messages
		}
		got <- m
	})
	if err != nil {
		panic(err)
	}
	defer unsubscribe()
	if err := server.Flush(); err != nil {
		panic(err)
	}

	n, err := host.Publish(subj.Update, &transport.Message{Kind: transport.KindUpdate, Round: 1, Client: 3, N: 60})
	if err != nil {
		panic(err)
	}
	m := <-got
	fmt.Println(n, m.Kind, m.Round, m.Client, m.N)
	// Output:
	// 44 update 1 3 60
}

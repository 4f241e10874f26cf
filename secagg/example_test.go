package secagg_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/fotsim/fotsim/secagg"
)

// Three clients sum 2x3 matrices (a GPSE sketch, say, flattened row by
// row); client 2 drops after sharing its keys. In a real deployment each
// message goes over the network (MarshalBinary / UnmarshalBinary) and the
// randomness is crypto/rand.Reader.
func Example() {
	p := secagg.DefaultParams(2024, 2)
	inputs := [][]float32{{1, 2, 3, 4, 5, 6}, {0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, {100, 100, 100, 100, 100, 100}}
	srv, _ := secagg.NewServer(6, p)
	var clients []*secagg.Client
	for i := range inputs {
		c, _ := secagg.NewClient(secagg.ID(i), 6, p, rand.NewChaCha8([32]byte{byte(i)}))
		adv, _ := c.Advertise()
		srv.AddAdvertise(adv)
		clients = append(clients, c)
	}
	keys, _ := srv.KeyList()
	for _, c := range clients {
		sk, _ := c.ShareKeys(keys)
		srv.AddShareKeys(sk)
	}
	deliveries, _ := srv.Deliveries()
	up := 0
	for _, d := range deliveries {
		if d.To == 2 {
			continue // dropped
		}
		m, _ := clients[d.To].MaskInput(d, inputs[d.To])
		up += m.EncodedLen()
		srv.AddMaskedInput(m)
	}
	req, _ := srv.UnmaskRequest()
	for _, id := range req.Survivors {
		r, err := clients[id].Unmask(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		srv.AddUnmaskResponse(r)
	}
	res, err := srv.Finish()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("survivors", res.Survivors, "dropped", res.Dropped)
	fmt.Println("sum", res.Sum)
	fmt.Println("masked-input bytes", up)
	// Output:
	// survivors [0 1] dropped [2]
	// sum [1.5 2.5 3.5 4.5 5.5 6.5]
	// masked-input bytes 132
}

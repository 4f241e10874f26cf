package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"unsafe"
)

// littleEndian: on such hosts the keystream bytes are read as words in
// place (the same values binary.LittleEndian would give, without the
// per-word bounds checks).
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// The mask stream of a 32-byte seed is the AES-256-CTR keystream under
// that seed with a zero initial counter block (a 128-bit big-endian
// counter starting at 0). Ring element k of the mask is the little-endian
// word of RingBits/8 bytes at keystream offset k*RingBits/8. Because CTR
// mode can start at any block, a vector is expanded in independent chunks,
// in parallel, with the same result as one pass.

// chunkValues is the number of values expanded at a time: a multiple of 4
// so that a chunk starts on a 16-byte block for both ring widths, and
// small enough that the chunk and its keystream stay in L2.
const chunkValues = 4096

// mask is one term of a masked sum: the stream of a seed, added or
// subtracted.
type mask struct {
	block cipher.Block
	sub   bool
}

func newMask(seed [32]byte, sub bool) mask {
	b, err := aes.NewCipher(seed[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	return mask{block: b, sub: sub}
}

var zeroChunk [chunkValues * 8]byte

// applyMasks adds (or subtracts) the stream of every mask to acc, modulo
// 2^64; words are wordBytes (4 or 8) bytes of keystream. The caller
// reduces modulo the ring afterwards (2^32 divides 2^64).
func applyMasks(acc []uint64, masks []mask, wordBytes, workers int) {
	if len(masks) == 0 || len(acc) == 0 {
		return
	}
	chunks := (len(acc) + chunkValues - 1) / chunkValues
	if workers < 1 {
		workers = 1
	}
	if workers > chunks {
		workers = chunks
	}
	var next atomic.Int64
	run := func() {
		words := make([]uint64, chunkValues)
		buf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), chunkValues*8)
		var iv [aes.BlockSize]byte
		for {
			c := int(next.Add(1) - 1)
			if c >= chunks {
				return
			}
			lo := c * chunkValues
			hi := min(lo+chunkValues, len(acc))
			a := acc[lo:hi]
			n := len(a) * wordBytes
			binary.BigEndian.PutUint64(iv[8:], uint64(lo*wordBytes/aes.BlockSize))
			for _, m := range masks {
				ks := buf[:n]
				cipher.NewCTR(m.block, iv[:]).XORKeyStream(ks, zeroChunk[:n])
				if littleEndian {
					addNative(a, words, wordBytes, m.sub)
				} else {
					addWords(a, ks, wordBytes, m.sub)
				}
			}
		}
	}
	if workers == 1 {
		run()
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(run)
	}
	wg.Wait()
}

// addWords adds (sub: subtracts) the little-endian words of ks to a.
func addWords(a []uint64, ks []byte, wordBytes int, sub bool) {
	if wordBytes == 8 {
		ks = ks[:len(a)*8]
		if sub {
			for i := range a {
				a[i] -= binary.LittleEndian.Uint64(ks[8*i:])
			}
		} else {
			for i := range a {
				a[i] += binary.LittleEndian.Uint64(ks[8*i:])
			}
		}
		return
	}
	ks = ks[:len(a)*4]
	if sub {
		for i := range a {
			a[i] -= uint64(binary.LittleEndian.Uint32(ks[4*i:]))
		}
	} else {
		for i := range a {
			a[i] += uint64(binary.LittleEndian.Uint32(ks[4*i:]))
		}
	}
}

// addNative is addWords on a little-endian host, reading the keystream
// buffer words as 64- or 32-bit integers in place.
func addNative(a, words []uint64, wordBytes int, sub bool) {
	if wordBytes == 8 {
		w := words[:len(a)]
		if sub {
			for i := range a {
				a[i] -= w[i]
			}
		} else {
			for i := range a {
				a[i] += w[i]
			}
		}
		return
	}
	w := unsafe.Slice((*uint32)(unsafe.Pointer(&words[0])), 2*len(words))[:len(a)]
	if sub {
		for i := range a {
			a[i] -= uint64(w[i])
		}
	} else {
		for i := range a {
			a[i] += uint64(w[i])
		}
	}
}

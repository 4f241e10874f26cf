package transport

import (
	"errors"
	"math"
	"strconv"
)

// Version is the wire-format version written by AppendBinary and the only one
// Decode accepts. Version 3 added the signature trailer (Message.Sig).
const Version = 3

// Limits of the codec. A message that exceeds one of them is rejected with
// ErrLength, both when it is encoded and when it is decoded.
const (
	MaxNameLen = 255     // bytes in a Scalar or Tensor name
	MaxClients = 1 << 20 // entries in Message.Clients
	MaxScalars = 1 << 16 // entries in Message.Scalars
	MaxTensors = 1 << 16 // entries in Message.Tensors
	MaxDim     = 1<<31 - 1
	MaxSigLen  = 255 // bytes in Message.Sig
)

// Kind says what a Message is for.
type Kind uint8

// The message kinds.
const (
	KindRound  Kind = 1 // server -> client hosts: start a round (global model, selected clients)
	KindUpdate Kind = 2 // client -> server: one client's update for a round
	KindStop   Kind = 3 // server -> client hosts: the run is over
)

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k >= KindRound && k <= KindStop }

// String returns "round", "update", "stop" or "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindRound:
		return "round"
	case KindUpdate:
		return "update"
	case KindStop:
		return "stop"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Tensor is a named row-major float32 matrix: Data holds Rows*Cols values.
// A vector is a Rows x 1 (or 1 x Cols) tensor.
type Tensor struct {
	Name       string
	Rows, Cols int
	Data       []float32
}

// Scalar is a named float64 statistic (a loss, a norm, a timing).
type Scalar struct {
	Name  string
	Value float64
}

// Message is the one message type of the protocol. Which fields are used
// depends on Kind; the codec carries all of them whatever the kind.
//
// KindRound: Round, Task, Clients (the selected client ids), Tensors (the
// global model and anything else the clients need), Flags.
// KindUpdate: Round, Task, Client, N (samples trained on), Tensors (the
// delta), Scalars (training statistics), Flags.
// KindStop: Round (the last round), Flags.
//
// Sig, of any kind, is a signature of the rest of the message (package
// auth signs SigningDigest), empty when the message is not signed; it
// travels in a trailer after the last tensor.
type Message struct {
	Kind    Kind
	Round   int32
	Task    int32
	Client  int32
	Clients []int32
	N       int64
	Flags   uint32
	Scalars []Scalar
	Tensors []Tensor
	Sig     []byte
}

// Sentinel errors. Errors from the codec, the framing, the options and
// connecting wrap one of them (errors.Is) with context: which field, which
// tensor, which subject, which URL. Errors that come from NATS itself (a
// failed publish or flush) are wrapped as they are, plus ErrClosed when the
// connection is closed.
var (
	ErrMagic      = errors.New("transport: bad magic (not a fotsim message)")
	ErrVersion    = errors.New("transport: unsupported wire version")
	ErrKind       = errors.New("transport: unknown message kind")
	ErrTruncated  = errors.New("transport: truncated message")
	ErrLength     = errors.New("transport: length out of bounds")
	ErrShape      = errors.New("transport: tensor shape does not match its data")
	ErrTrailing   = errors.New("transport: trailing bytes after message")
	ErrPadding    = errors.New("transport: non-zero padding")
	ErrNonFinite  = errors.New("transport: non-finite value")
	ErrFrame      = errors.New("transport: bad frame")
	ErrIncomplete = errors.New("transport: incomplete chunked message dropped")
	ErrTooLarge   = errors.New("transport: message too large")
	ErrDropped    = errors.New("transport: messages dropped by nats")
	ErrConnect    = errors.New("transport: connect")
	ErrClosed     = errors.New("transport: closed")
	ErrOptions    = errors.New("transport: invalid options")
)

// Tensor returns the message's tensor called name, or nil.
func (m *Message) Tensor(name string) *Tensor {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i]
		}
	}
	return nil
}

// Scalar returns the value of the message's scalar called name and whether
// it is there; NaN when it is not.
func (m *Message) Scalar(name string) (float64, bool) {
	for _, s := range m.Scalars {
		if s.Name == name {
			return s.Value, true
		}
	}
	return math.NaN(), false
}

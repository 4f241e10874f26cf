// Package transport is fotsim's wire protocol over NATS: the message codec,
// the subjects of a run, an embedded NATS server, and connections that
// publish and subscribe to messages, chunking those larger than the server's
// max payload. It is the only package that imports nats.go and nats-server.
//
// # Use
//
// In one process (the default), start an embedded server and give every
// party an in-process connection:
//
//	e, err := transport.StartEmbedded() // 127.0.0.1, random port, 8 MiB max payload
//	defer e.Shutdown()
//	srv, err := e.Connect("server")     // in-memory pipe, no TCP
//	host, err := e.Connect("host-0")
//	subj := transport.SubjectsFor(runID) // fotsim.<run>.round / fotsim.<run>.update
//	unsub, err := srv.Subscribe(subj.Update, func(m *transport.Message, err error) {
//		if err != nil { /* count and log: a rejected message */ return }
//		// m is ours to keep
//	})
//	n, err := host.Publish(subj.Update, &transport.Message{Kind: transport.KindUpdate, ...})
//
// Publish copies a message into the connection's buffer. A publisher of
// large tensors can save that copy with a Frame, whose tensor values it
// writes in place (Frame.Values), then Frame.Encode and PublishFrame. A
// subscription decodes with DecodeShared: the tensor values of a received
// message are a view of the NATS payload, checked for NaN/Inf but not
// copied.
//
// Client hosts in other processes or on other machines connect with
// Dial(e.URL(), name) (start the server with EmbeddedOptions{Host:
// "0.0.0.0"} to accept other machines) or Dial any NATS server's URL.
//
// # Credentials and TLS
//
// A NATS server with users (EmbeddedOptions.Users, or nats-server's
// authorization block; RolePermissions gives the subjects of the server,
// client and viewer roles) takes a user and password in the URL,
// nats://name:password@host:4222, or DialOptions.Password for a URL that
// names only the user. A publish or subscription the server refuses (a
// "Permissions Violation") gives the connection up at once: Done is
// closed and Err is a *PermissionError, wrapping ErrPermission and
// ErrLost, that names the user and the subject. TLS: a tls:// URL, and
// DialOptions.CAFile for a server certificate signed by a private CA
// (EmbeddedOptions.TLS starts an embedded server with TLS). Errors and
// Health show URLs with the password as "xxxxx" (RedactURLs).
//
// Subscription handlers run on the subscription's NATS delivery goroutine,
// one call at a time per subscription, in arrival order. Every message a
// handler receives has been fully validated (see Decode); everything
// rejected reaches it as an error wrapping one of the package's sentinel
// errors, so the caller can count and log it.
//
// # Subjects
//
// SubjectsFor(run) returns "fotsim.<run>.round" (server to client hosts:
// KindRound, KindStop) and "fotsim.<run>.update" (client hosts to server:
// KindUpdate). The run id is made a single NATS token: bytes other than
// [A-Za-z0-9_-] become '_', the token is cut to 64 bytes, and if anything
// changed "-" plus the 8-hex-digit FNV-1a hash of the original id is
// appended so that different ids keep different subjects.
//
// # Message encoding (Version 3)
//
// All integers are little-endian; floats are IEEE 754 bit patterns, also
// little-endian. Offsets are in bytes.
//
//	offset size  field
//	0      4     magic "FOTS" (0x46 0x4f 0x54 0x53)
//	4      1     version, 3
//	5      1     kind: 1 round, 2 update, 3 stop
//	6      4     round   int32
//	10     4     task    int32
//	14     4     client  int32
//	18     4     flags   uint32
//	22     8     n       int64
//	30     4     C = number of clients  uint32 (<= MaxClients)
//	34     4     S = number of scalars  uint32 (<= MaxScalars)
//	38     4     T = number of tensors  uint32 (<= MaxTensors)
//	42     4*C   clients, int32 each
//	then S scalars, each:
//	       2     L = name length uint16 (<= MaxNameLen = 255)
//	       L     name, raw bytes
//	       8     value float64 (finite)
//	then T tensors, each:
//	       2     L = name length uint16 (<= MaxNameLen)
//	       L     name
//	       4     rows uint32 (<= 2^31-1)
//	       4     cols uint32 (<= 2^31-1)
//	       4     D = number of values uint32, == rows*cols
//	       P     zero bytes, 0 <= P <= 3, so that the values start at an
//	             offset from the message's start that is a multiple of 4
//	       4*D   values float32 (finite), row-major
//	then the signature trailer:
//	       2     G = signature length uint16 (<= MaxSigLen = 255; 0 = unsigned)
//	       G     signature (Message.Sig), raw bytes
//	end of message: no trailing bytes.
//
// A message of T tensors with D values in all is 42 + 4C + Σ(10+L) +
// Σ(14+L+P) + 4D + 2 + G bytes (Message.EncodedLen); without the trailer
// (Message.BodyLen) it is what a signature covers. Version 2 added the
// padding P, so that a receiver can use the values where they lie
// (DecodeShared) instead of copying them; version 3 added the signature
// trailer: a signature covers the SHA-256 digest of the bytes before the
// trailer (Message.SigningDigest; package auth signs and verifies it),
// and the codec only carries it. Decode rejects, with the
// sentinel in brackets: a wrong magic [ErrMagic], version [ErrVersion] or
// kind [ErrKind]; a count or length above its limit [ErrLength]; any part
// that runs past the end of the input, checked before anything is allocated
// [ErrTruncated]; rows*cols != D [ErrShape]; a non-zero padding byte
// [ErrPadding]; a NaN or ±Inf scalar or tensor
// value [ErrNonFinite]; bytes after the signature trailer [ErrTrailing]. The
// encoding is canonical: a message that decodes re-encodes to the same
// bytes. AppendBinary refuses to encode what Decode would reject.
//
// # Frames
//
// Every NATS payload published by Conn starts with a 1-byte frame type.
//
// Whole frame, when 4 + the encoded message fits in the server's max
// payload:
//
//	0      1     0x03
//	1      3     zero bytes, so that the message starts 4-byte aligned
//	4      ...   the encoded message
//
// A received payload is a buffer of its own, so a whole frame's message is
// decoded in place (DecodeShared). Frame type 0x01 (the message right after
// the type byte) is what senders of wire version 1 published; it is still
// parsed, so that such a sender gets ErrVersion rather than ErrFrame.
//
// Chunk frame, otherwise: the encoded message is cut into count =
// ceil(total/B) pieces of B = maxPayload-29 bytes (the last one shorter),
// each published as
//
//	0      1     0x02
//	1      8     publisher id uint64 (random per Conn)
//	9      8     message sequence uint64 (per publisher, from 1)
//	17     4     index uint32 (0 <= index < count)
//	21     4     count uint32
//	25     4     total uint32 = length of the encoded message
//	29     ...   the piece: bytes [index*B, min((index+1)*B, total))
//
// The subscriber reassembles per (publisher, sequence). Chunks may arrive
// in any order; every chunk but the last must have the same size, the last
// one ends the message, and their sizes must add up to total. NATS delivers
// one connection's messages in order and a Conn sends one message's chunks
// back to back, so a chunk of a newer message from the same publisher drops
// the older incomplete one. Memory is bounded per subscription: at most
// 1 GiB for one message and for all incomplete ones together, 1024
// incomplete messages, each kept for at most 2 minutes; what is dropped is
// reported as ErrIncomplete.
package transport

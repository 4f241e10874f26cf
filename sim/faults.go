package sim

import (
	"context"
	"errors"
	"fmt"

	"github.com/fotsim/fotsim/transport"
)

// watchConns returns a context that is canceled, with the connection's
// error as its cause, as soon as one of conns is given up (disconnected for
// longer than transport.timeout, see transport.Conn.Done), and a function
// that stops watching. The server's and the hosts' loops end on that
// context instead of waiting for messages that cannot come.
func watchConns(ctx context.Context, conns ...*transport.Conn) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	for _, c := range conns {
		go func() {
			select {
			case <-c.Done():
				cancel(c.Err())
			case <-stop:
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() { close(stop); cancel(nil) }
}

// connErr returns err, or the lost connection's error when ctx ended
// because a connection was given up and err does not say so already.
func connErr(ctx context.Context, err error) error {
	if errors.Is(err, transport.ErrLost) {
		return err
	}
	if cause := context.Cause(ctx); errors.Is(cause, transport.ErrLost) {
		return fmt.Errorf("sim: %w", cause)
	}
	return err
}

// external reports whether url names an external NATS server, whose
// connections can drop (not "embedded", which the run starts in process).
func external(url string) bool { return url != "" && url != "embedded" }

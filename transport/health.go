package transport

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultTimeout is how long a Dial connection may stay away from every
// server of its URL list before it gives up (DialOptions.Timeout).
const DefaultTimeout = 30 * time.Second

// ErrLost is wrapped by Conn.Err once the connection is given up: away from
// every NATS server for longer than its timeout, or closed by the server.
var ErrLost = errors.New("transport: NATS connection lost")

// DialOptions configure DialWith.
type DialOptions struct {
	// Timeout is how long the connection may stay disconnected while it
	// tries to reconnect (to any server of its URL list): after that, Done
	// is closed, Err names the URL and how long it was down, and the
	// connection is closed. 0 means DefaultTimeout.
	Timeout time.Duration
	// Password, when set, is the password of every URL that names a user
	// but no password (nats://name@host:4222), so that it need not be in
	// the URL (nor on a command line, where ps shows it). A URL with a
	// password of its own keeps it. Without Password, NATS takes a user
	// without a password for a token.
	Password string
	// CAFile, when set, is a PEM file of the CA certificates that sign
	// the server's TLS certificate: the connection then requires TLS
	// (with a nats:// URL too) and verifies the server's certificate
	// against them (and the URL's host name). Without it, a tls:// URL or
	// a server that requires TLS is verified against the system's CAs.
	CAFile string
}

// Validate reports options that cannot work.
func (o DialOptions) Validate() error {
	if o.Timeout < 0 {
		return fmt.Errorf("%w: timeout %v, want > 0 (0: the default %v)", ErrOptions, o.Timeout, DefaultTimeout)
	}
	if o.CAFile != "" {
		if _, err := tlsConfig(o.CAFile); err != nil {
			return err
		}
	}
	return nil
}

// Health is a snapshot of a connection's state (Conn.Health).
type Health struct {
	// URL is the server the connection uses, or used last.
	URL string
	// Connected is false while the connection is trying to reconnect,
	// and once it is closed or given up.
	Connected bool
	// Disconnects counts the times the connection was lost.
	Disconnects int
	// DownSince is when the current outage began (zero while connected).
	DownSince time.Time
	// LastOutage is how long the last outage that ended in a reconnect
	// lasted.
	LastOutage time.Duration
}

// health follows a connection's disconnects and reconnects (the NATS
// handlers below) and gives the connection up after its timeout.
type health struct {
	urls    string        // the URL list dialled, credentials redacted
	user    string        // the URLs' user name, for permission errors
	timeout time.Duration // 0: never give up (in-process connections)

	mu      sync.Mutex
	h       Health
	lastErr error // why the connection dropped last
	timer   *time.Timer
	closing bool  // Close was called: handlers ignore what follows
	err     error // why the connection was given up
	done    chan struct{}
	nc      *nats.Conn
}

func newHealth(urls string, timeout time.Duration) *health {
	return &health{urls: redactURLs(urls), user: urlUser(urls), timeout: timeout, done: make(chan struct{}), h: Health{Connected: true}}
}

// options are the NATS options that feed the health.
func (hl *health) options() []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(hl.disconnected),
		nats.ReconnectHandler(hl.reconnected),
		nats.ClosedHandler(hl.closed),
	}
}

// connected records the connection once nats.Connect returned it.
func (hl *health) connected(nc *nats.Conn) {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	hl.nc = nc
	hl.h.URL = nc.ConnectedUrlRedacted()
	if hl.err != nil { // refused before Connect returned
		go nc.Close()
	}
}

func (hl *health) disconnected(_ *nats.Conn, err error) {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if hl.closing || hl.err != nil || !hl.h.Connected {
		return
	}
	since := time.Now()
	hl.h.Connected, hl.h.DownSince = false, since
	hl.h.Disconnects++
	hl.lastErr = err
	if hl.timeout > 0 {
		hl.timer = time.AfterFunc(hl.timeout, func() { hl.giveUp(since) })
	}
}

func (hl *health) reconnected(nc *nats.Conn) {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if hl.closing || hl.err != nil {
		return
	}
	if hl.timer != nil {
		hl.timer.Stop()
		hl.timer = nil
	}
	hl.h.LastOutage = time.Since(hl.h.DownSince)
	hl.h.Connected, hl.h.DownSince = true, time.Time{}
	hl.h.URL = nc.ConnectedUrlRedacted()
}

// closed runs when NATS closes the connection: after Close (ignored), or
// on its own (the in-process server shut down, or reconnecting failed).
func (hl *health) closed(nc *nats.Conn) {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if hl.closing || hl.err != nil {
		return
	}
	why := nc.LastError()
	if why == nil {
		why = hl.lastErr
	}
	if why == nil {
		why = errors.New("closed by the server")
	}
	hl.fail(fmt.Errorf("%w: connection to %s closed: %w", ErrLost, hl.where(), why))
}

// refused gives the connection up after a permissions violation (NATS's
// async error err): the server refused a publish or a subscription, so
// the messages the process waits for may never come. It reports whether
// the connection was given up now.
func (hl *health) refused(err error) bool {
	hl.mu.Lock()
	if hl.closing || hl.err != nil {
		hl.mu.Unlock()
		return false
	}
	hl.fail(permissionError(err, hl.user, hl.where()))
	hl.closing = true
	nc := hl.nc
	hl.mu.Unlock()
	if nc != nil {
		// Not from NATS's callback goroutine, which Close may wait for.
		go nc.Close()
	}
	return true
}

// giveUp ends an outage that began at since and lasted the timeout.
func (hl *health) giveUp(since time.Time) {
	hl.mu.Lock()
	if hl.closing || hl.err != nil || hl.h.Connected || !hl.h.DownSince.Equal(since) {
		hl.mu.Unlock()
		return
	}
	why := hl.lastErr
	if why == nil {
		why = errors.New("no reason given")
	}
	down := time.Since(since).Round(time.Millisecond)
	if hl.h.URL == "" || hl.h.URL == hl.urls {
		hl.fail(fmt.Errorf("%w: %s unreachable for %v (timeout %v); the connection dropped with: %w",
			ErrLost, hl.urls, down, hl.timeout, why))
	} else {
		hl.fail(fmt.Errorf("%w: no server of %s reachable for %v (timeout %v); the connection to %s dropped with: %w",
			ErrLost, hl.urls, down, hl.timeout, hl.h.URL, why))
	}
	hl.closing = true
	nc := hl.nc
	hl.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// where names the server of the connection: the one it used last, and
// the URL list when there are several.
func (hl *health) where() string {
	if hl.h.URL == "" || hl.h.URL == hl.urls {
		return hl.urls
	}
	return hl.h.URL + " (of " + hl.urls + ")"
}

// fail records err as the reason the connection is given up. hl.mu must
// be held.
func (hl *health) fail(err error) {
	hl.err = err
	hl.h.Connected = false
	if hl.timer != nil {
		hl.timer.Stop()
		hl.timer = nil
	}
	close(hl.done)
}

// close marks the connection as closed by its owner.
func (hl *health) close() {
	hl.mu.Lock()
	defer hl.mu.Unlock()
	hl.closing = true
	if hl.timer != nil {
		hl.timer.Stop()
		hl.timer = nil
	}
}

// Done returns a channel that is closed when the connection is given up:
// disconnected for longer than its timeout (DialOptions.Timeout) while it
// tried to reconnect, closed by the server, or refused a publish or a
// subscription by the server's permissions; Err then says why. It is
// never closed by Close.
func (c *Conn) Done() <-chan struct{} { return c.hl.done }

// Err returns nil until Done is closed, then an error wrapping ErrLost that
// names the NATS URL, how long the connection was down and why; after a
// permissions violation, a *PermissionError (which wraps ErrLost and
// ErrPermission) naming the user and the refused subject.
func (c *Conn) Err() error {
	c.hl.mu.Lock()
	defer c.hl.mu.Unlock()
	return c.hl.err
}

// Health returns the connection's state now.
func (c *Conn) Health() Health {
	c.hl.mu.Lock()
	defer c.hl.mu.Unlock()
	return c.hl.h
}

// redactURLs returns a comma-separated URL list with passwords hidden.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err == nil && u.User != nil {
			p = u.Redacted()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// reconnectPoll is how often a publish or flush that waits for a reconnect
// looks at the connection.
const reconnectPoll = 10 * time.Millisecond

// reconnected waits while the connection is reconnecting and reports
// whether it is connected again (false: closed or given up).
func (c *Conn) reconnected() bool {
	for !c.nc.IsConnected() {
		if c.nc.IsClosed() {
			return false
		}
		select {
		case <-c.hl.done:
			return false
		case <-time.After(reconnectPoll):
		}
	}
	return true
}

// natsPublish publishes data on subject. While the connection reconnects,
// NATS buffers publishes up to its reconnect buffer (8 MiB); a publish
// that does not fit waits for the reconnect instead of failing. Once the
// connection is given up, the error is Err.
func (c *Conn) natsPublish(subject string, data []byte) error {
	if lost := c.Err(); lost != nil { // given up: NATS may not have closed it yet
		return lost
	}
	for {
		err := c.nc.Publish(subject, data)
		if err == nil {
			return nil
		}
		if !errors.Is(err, nats.ErrReconnectBufExceeded) || !c.reconnected() {
			if lost := c.Err(); lost != nil {
				return lost
			}
			return err
		}
	}
}

package transport

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Defaults of EmbeddedOptions.
const (
	DefaultHost       = "127.0.0.1"
	DefaultMaxPayload = 8 << 20 // bytes; NATS's own default is 1 MiB

	minMaxPayload = 64       // bytes; a chunk must carry at least a few bytes of message
	maxMaxPayload = 64 << 20 // bytes; the server's per-client pending limit is raised to 4x this
	readyTimeout  = 10 * time.Second
)

// EmbeddedOptions configure an embedded NATS server.
type EmbeddedOptions struct {
	// Host is the interface the server listens on for other processes:
	// "127.0.0.1" by default, "0.0.0.0" to accept client hosts on other
	// machines.
	Host string
	// Port is the TCP port; 0 (the default) picks a free port at random.
	Port int
	// MaxPayload is the largest NATS payload in bytes (DefaultMaxPayload
	// when 0). Larger messages are chunked by Conn.Publish.
	MaxPayload int
	// Name is the server's name ("fotsim-embedded" when empty); the
	// nodes of a cluster need names of their own.
	Name string
	// Cluster, when set, makes the server a node of the NATS cluster of
	// that name: it accepts routes from the other nodes on Host at
	// ClusterPort (0: a free port at random, see ClusterURL) and connects
	// to the nodes listed in Routes (nats://host:port route URLs; the
	// nodes then learn of each other). Clients may Dial the
	// comma-separated URLs of the nodes and move to another node when
	// theirs goes away.
	Cluster     string
	ClusterPort int
	Routes      []string
	// InProcess, when set, opens no network listener at all: only
	// Connect's in-process connections reach the server, so no other
	// process can publish on its subjects. Host, Port and the cluster
	// options must then be zero, and URL is "".
	InProcess bool
	// Users, when set, are the only users the server accepts, each with
	// its subject permissions (see User, RolePermissions); connections
	// give a name and password in the URL (nats://name:password@host:port).
	// Connect's in-process connections give no credentials: Connect
	// fails, so a server with Users is for other processes.
	Users []User
	// TLS, when set, is the server's TLS configuration (its certificate
	// in Certificates): every connection must then use TLS, and URL is
	// tls://host:port. Clients verify the certificate with
	// DialOptions.CAFile (or the system's CAs).
	TLS *tls.Config
}

// DefaultEmbeddedOptions returns the options StartEmbedded uses.
func DefaultEmbeddedOptions() EmbeddedOptions {
	return EmbeddedOptions{Host: DefaultHost, Port: 0, MaxPayload: DefaultMaxPayload}
}

// Validate reports options that cannot work; zero fields are valid (they
// select the defaults).
func (o EmbeddedOptions) Validate() error {
	if o.TLS != nil && len(o.TLS.Certificates) == 0 && o.TLS.GetCertificate == nil {
		return fmt.Errorf("%w: a TLS configuration without a certificate", ErrOptions)
	}
	if o.InProcess && (o.Port != 0 || o.Cluster != "" || o.ClusterPort != 0 || len(o.Routes) > 0) {
		return fmt.Errorf("%w: an in-process server takes no port or cluster options", ErrOptions)
	}
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("%w: port %d, want 0 (random) to 65535", ErrOptions, o.Port)
	}
	if o.MaxPayload != 0 && (o.MaxPayload < minMaxPayload || o.MaxPayload > maxMaxPayload) {
		return fmt.Errorf("%w: max payload %d bytes, want %d to %d", ErrOptions, o.MaxPayload, minMaxPayload, maxMaxPayload)
	}
	if o.Cluster == "" && (o.ClusterPort != 0 || len(o.Routes) > 0) {
		return fmt.Errorf("%w: a cluster port or routes without a cluster name", ErrOptions)
	}
	if o.ClusterPort < 0 || o.ClusterPort > 65535 {
		return fmt.Errorf("%w: cluster port %d, want 0 (random) to 65535", ErrOptions, o.ClusterPort)
	}
	for _, r := range o.Routes {
		if u, err := url.Parse(r); err != nil || u.Host == "" {
			return fmt.Errorf("%w: route %q, want a URL such as nats://127.0.0.1:6222", ErrOptions, r)
		}
	}
	return validateUsers(o.Users)
}

// Embedded is a NATS server running inside this process. Its connections
// from this process (Connect) use in-memory pipes; other processes reach it
// over TCP at URL().
type Embedded struct {
	srv     *server.Server
	url     string
	cluster string // route URL, "" outside a cluster
	users   bool   // EmbeddedOptions.Users: Connect is refused
}

// StartEmbedded starts an embedded NATS server with DefaultEmbeddedOptions:
// loopback only, random port, 8 MiB max payload, no JetStream, no logging.
func StartEmbedded() (*Embedded, error) {
	return StartEmbeddedWith(EmbeddedOptions{})
}

// StartEmbeddedWith starts an embedded NATS server with opts (zero fields
// take their defaults) and waits until it accepts connections.
func StartEmbeddedWith(opts EmbeddedOptions) (*Embedded, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	so := &server.Options{
		ServerName: cmp.Or(opts.Name, "fotsim-embedded"),
		Host:       opts.Host,
		Port:       port,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: int32(opts.MaxPayload),
		// A subscriber that falls behind by more than this is cut off by
		// the server: leave room for a round's worth of updates.
		MaxPending: max(server.MAX_PENDING_SIZE, 4*int64(opts.MaxPayload)),
		JetStream:  false,
		DontListen: opts.InProcess,
	}
	if opts.TLS != nil {
		so.TLS, so.TLSConfig, so.TLSTimeout = true, opts.TLS.Clone(), 2
		so.TLSConfig.MinVersion = max(so.TLSConfig.MinVersion, tls.VersionTLS12)
	}
	for _, u := range opts.Users {
		so.Users = append(so.Users, &server.User{
			Username: u.Name,
			Password: u.Password,
			Permissions: &server.Permissions{
				Publish:   subjectPermission(u.Publish),
				Subscribe: subjectPermission(u.Subscribe),
			},
		})
	}
	if opts.Cluster != "" {
		cport := opts.ClusterPort
		if cport == 0 {
			cport = server.RANDOM_PORT
		}
		so.Cluster = server.ClusterOpts{Name: opts.Cluster, Host: opts.Host, Port: cport}
		so.Routes = server.RoutesFromStr(strings.Join(opts.Routes, ","))
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("transport: start embedded server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("transport: embedded server on %s not ready after %v", net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), readyTimeout)
	}
	e := &Embedded{srv: srv, users: len(opts.Users) > 0}
	if opts.InProcess {
		return e, nil
	}
	host := opts.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	p := opts.Port
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		p = a.Port
	}
	scheme := "nats://"
	if opts.TLS != nil {
		scheme = "tls://"
	}
	e.url = scheme + net.JoinHostPort(host, strconv.Itoa(p))
	if a := srv.ClusterAddr(); a != nil && opts.Cluster != "" {
		e.cluster = "nats://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	return e, nil
}

// subjectPermission allows exactly subjects: nothing when empty (where
// nats-server allows everything).
func subjectPermission(subjects []string) *server.SubjectPermission {
	if len(subjects) == 0 {
		return &server.SubjectPermission{Deny: []string{">"}}
	}
	return &server.SubjectPermission{Allow: slices.Clone(subjects)}
}

// ClusterURL returns the route URL other nodes of the cluster connect to
// (EmbeddedOptions.Routes), "" for a server outside a cluster.
func (e *Embedded) ClusterURL() string { return e.cluster }

// Peers returns the number of other cluster nodes this server has a route
// to now.
func (e *Embedded) Peers() int { return e.srv.NumRemotes() }

// Clients returns the number of client connections the server has now.
func (e *Embedded) Clients() int { return e.srv.NumClients() }

// URL returns the server's client URL, nats://host:port (tls://host:port
// with EmbeddedOptions.TLS), for processes that Dial it. A server
// listening on all interfaces reports 127.0.0.1.
func (e *Embedded) URL() string { return e.url }

// Connect opens a connection named name to the server over an in-memory pipe
// (no TCP). It does not reconnect: it lives as long as the server (its
// Done is closed if the server shuts down under it).
//
// A server with EmbeddedOptions.Users refuses it: in-process connections
// give no credentials.
func (e *Embedded) Connect(name string) (*Conn, error) {
	if e.users {
		return nil, fmt.Errorf("%w in-process to %s: the server has users, and an in-process connection no credentials", ErrConnect, e.url)
	}
	c := newConn()
	c.hl = newHealth(e.url, 0)
	nc, err := nats.Connect(e.url, append(c.hl.options(),
		nats.InProcessServer(e.srv),
		nats.Name(name),
		nats.NoReconnect(),
		nats.ErrorHandler(c.asyncError),
	)...)
	if err != nil {
		return nil, fmt.Errorf("%w in-process to %s: %w", ErrConnect, e.url, err)
	}
	c.nc = nc
	c.hl.connected(nc)
	return c, nil
}

// Shutdown closes every connection and stops the server, and returns when it
// has stopped. It is safe to call more than once.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"
)

// ErrPermission is wrapped by Conn.Err once the NATS server refused a
// publish or a subscription of the connection (a "Permissions Violation":
// the user's permissions do not allow the subject). Such a connection is
// given up at once, as a lost one is: its Err wraps ErrLost too, so that
// a run or client host waiting for messages that can never come ends with
// the error instead of stalling.
var ErrPermission = errors.New("transport: NATS permissions violation")

// PermissionError is Conn.Err after a permissions violation. It wraps
// ErrPermission, ErrLost and the NATS error.
type PermissionError struct {
	User    string // the connection's user, "" when it gave none
	Op      string // "publish" or "subscribe"; "" when NATS did not say
	Subject string // the refused subject; "" when NATS did not say
	URL     string // the server, password redacted
	Err     error  // NATS's error (wraps nats.ErrPermissionViolation)
}

func (e *PermissionError) Error() string {
	user := "no user"
	if e.User != "" {
		user = fmt.Sprintf("user %q", e.User)
	}
	if e.Subject == "" {
		return fmt.Sprintf("%v: the NATS server %s refused an operation of %s (%v); the connection is given up: give this process the credentials of its role (fotsim natsconf)",
			ErrPermission, e.URL, user, e.Err)
	}
	return fmt.Sprintf("%v: the NATS server %s does not let %s %s %q; the connection is given up: give this process the credentials of its role (fotsim natsconf)",
		ErrPermission, e.URL, user, e.Op, e.Subject)
}

// Unwrap returns ErrPermission, ErrLost and the NATS error.
func (e *PermissionError) Unwrap() []error { return []error{ErrPermission, ErrLost, e.Err} }

// permissionRE matches the subject of nats-server's violations:
// `Permissions Violation for Publish to "x"` and `... for Subscription to
// "x"` (maybe followed by ` using queue "q"`).
var permissionRE = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]*)"`)

// permissionError describes NATS's permissions violation err of the
// connection of user to urls (redacted).
func permissionError(err error, user, urls string) *PermissionError {
	e := &PermissionError{User: user, URL: urls, Err: err}
	if m := permissionRE.FindStringSubmatch(err.Error()); m != nil {
		e.Op, e.Subject = "subscribe to", m[2]
		if strings.EqualFold(m[1], "publish") {
			e.Op = "publish to"
		}
	}
	return e
}

// urlUser returns the user name of the first URL of the comma-separated
// urls that has one ("" if none has).
func urlUser(urls string) string {
	for p := range strings.SplitSeq(urls, ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			return u.User.Username()
		}
	}
	return ""
}

// RedactURLs returns the comma-separated URL list urls with every password
// replaced by "xxxxx", for messages and records.
func RedactURLs(urls string) string { return redactURLs(urls) }

// WithPassword returns the comma-separated URL list urls with password
// set on every URL that names a user but no password
// (nats://name@host:4222 becomes nats://name:password@host:4222). URLs
// that already have a password, or no user, are left as they are. ok
// reports whether some URL got the password. An empty password changes
// nothing.
func WithPassword(urls, password string) (out string, ok bool) {
	if password == "" {
		return urls, false
	}
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has || u.User.Username() == "" {
			continue
		}
		u.User = url.UserPassword(u.User.Username(), password)
		parts[i] = u.String()
		ok = true
	}
	return strings.Join(parts, ","), ok
}

// URLHasPassword reports whether some URL of the comma-separated urls
// gives a password, and whether some names a user without one.
func URLHasPassword(urls string) (password, userOnly bool) {
	for p := range strings.SplitSeq(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			password = true
		} else if u.User.Username() != "" {
			userOnly = true
		}
	}
	return password, userOnly
}

// tlsConfig returns the client TLS configuration that trusts the
// certificates of the PEM file caFile (DialOptions.CAFile).
func tlsConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %w", ErrOptions, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrOptions, caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// connectHint adds what to do to the errors of nats.Connect that a user
// can fix: an untrusted or misnamed TLS certificate, a server without TLS,
// refused credentials.
func connectHint(err error, opts DialOptions) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		if opts.CAFile == "" {
			return fmt.Errorf("%w (the server's TLS certificate is not signed by a CA this machine trusts: give the CA's certificate, --nats-ca FILE or SSL_CERT_FILE=FILE)", err)
		}
		return fmt.Errorf("%w (the server's TLS certificate is not signed by the CA of %s)", err, opts.CAFile)
	case errors.As(err, &host):
		return fmt.Errorf("%w (the server's TLS certificate is not for the host of the URL: use the name or address the certificate names)", err)
	case errors.As(err, &invalid):
		return fmt.Errorf("%w (the server's TLS certificate is not valid)", err)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%w (this connection requires TLS, with its CA file or a tls:// URL, but the server does not offer it)", err)
	case errors.Is(err, nats.ErrAuthorization):
		return fmt.Errorf("%w (the server refused the user and password given: check the URL's user, and its password)", err)
	}
	return err
}

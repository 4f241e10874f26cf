package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// roleUsers returns a server, a client and a viewer user, and a user
// "nopub" that reads like a client but may publish only host reports.
func roleUsers(t *testing.T) []User {
	t.Helper()
	var users []User
	for _, r := range []struct{ role, name string }{{RoleServer, "srv"}, {RoleClient, "cli"}, {RoleViewer, "view"}} {
		u, err := RoleUser(r.role, r.name, r.name+"-secret")
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	cli := users[1]
	return append(users, User{Name: "nopub", Password: "nopub-secret", Publish: []string{SubjectPrefix + ".*.hosts"}, Subscribe: cli.Subscribe})
}

// userURL returns e's URL with the user name and its password.
func userURL(e *Embedded, name string) string {
	scheme, host, _ := strings.Cut(e.URL(), "://")
	return scheme + "://" + name + ":" + name + "-secret@" + host
}

// waitRefused waits until c is given up and checks that Err is a
// permissions violation naming user, op and subject, without the password.
func waitRefused(t *testing.T, c *Conn, user, op, subject string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("user %s: the connection was not given up after the server refused to %s %s", user, op, subject)
	}
	err := c.Err()
	var perr *PermissionError
	if !errors.Is(err, ErrPermission) || !errors.Is(err, ErrLost) || !errors.As(err, &perr) {
		t.Fatalf("Err = %v, want a *PermissionError wrapping ErrPermission and ErrLost", err)
	}
	if perr.User != user || perr.Op != op || perr.Subject != subject {
		t.Errorf("Err names user %q, %q %q; want %q, %q %q", perr.User, perr.Op, perr.Subject, user, op, subject)
	}
	for _, w := range []string{`user "` + user + `"`, op + ` "` + subject + `"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Err %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "-secret") {
		t.Errorf("Err gives the password away: %v", err)
	}
}

// The viewer role reads metrics and announcements and nothing else; it
// cannot publish at all. A refused publish or subscription gives the
// connection up at once (Done, Err naming the user and the subject):
// later publishes fail with that error.
func TestViewerAndRefusals(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{Users: roleUsers(t)})
	subj := SubjectsFor("r")

	srv := dial(t, userURL(e, "srv"), "server")
	view := dial(t, userURL(e, "view"), "viewer")
	got := make(chan string, 4)
	for _, s := range []string{MetricsWildcard, AnnounceSubject} {
		if _, err := view.SubscribeRaw(s, func(subject string, data []byte) { got <- subject + " " + string(data) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := view.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{subj.Metrics, AnnounceSubject} {
		if err := srv.PublishRaw(s, []byte(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			if g != s+` {"x":1}` {
				t.Errorf("viewer got %q", g)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("the viewer did not get the document on %s", s)
		}
	}
	select {
	case <-view.Done():
		t.Fatalf("the viewer's connection was given up: %v", view.Err())
	default:
	}

	for _, tc := range []struct {
		user, op, subject string
		do                func(c *Conn) error
	}{
		{"view", "publish to", subj.Round, func(c *Conn) error {
			_, err := c.Publish(subj.Round, &Message{Kind: KindStop})
			return err
		}},
		{"view", "publish to", subj.Update, func(c *Conn) error { return c.PublishRaw(subj.Update, []byte("x")) }},
		{"view", "subscribe to", subj.Update, func(c *Conn) error {
			_, err := c.Subscribe(subj.Update, func(*Message, error) {})
			return err
		}},
		{"view", "subscribe to", subj.Round, func(c *Conn) error {
			_, err := c.SubscribeRaw(subj.Round, func(string, []byte) {})
			return err
		}},
		{"nopub", "publish to", subj.Update, func(c *Conn) error { return c.PublishRaw(subj.Update, []byte("x")) }},
		{"cli", "publish to", subj.Round, func(c *Conn) error { return c.PublishRaw(subj.Round, []byte("x")) }},
		{"srv", "subscribe to", subj.Round, func(c *Conn) error {
			_, err := c.SubscribeRaw(subj.Round, func(string, []byte) {})
			return err
		}},
	} {
		t.Run(tc.user+" "+tc.op+" "+tc.subject, func(t *testing.T) {
			c := dial(t, userURL(e, tc.user), "t")
			if err := tc.do(c); err != nil {
				t.Fatal(err) // NATS refuses asynchronously
			}
			_ = c.Flush()
			waitRefused(t, c, tc.user, tc.op, tc.subject)
			if err := c.PublishRaw(subj.Hosts, []byte("x")); !errors.Is(err, ErrPermission) {
				t.Errorf("a publish after the refusal: %v, want the permissions violation", err)
			}
		})
	}
}

// A refused subscription still reaches its handler, after the connection
// is given up.
func TestRefusedSubscriptionHandler(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{Users: roleUsers(t)})
	c := dial(t, userURL(e, "cli"), "t")
	ch := make(chan delivery, 4)
	if _, err := c.Subscribe(SubjectsFor("r").Update, func(m *Message, err error) { ch <- delivery{m, err} }); err != nil {
		t.Fatal(err)
	}
	d := next(t, ch)
	if d.err == nil || !strings.Contains(d.err.Error(), "Permissions Violation") {
		t.Fatalf("handler got %v", d.err)
	}
	if c.Err() == nil {
		t.Error("the handler ran before the connection was given up")
	}
	waitRefused(t, c, "cli", "subscribe to", SubjectsFor("r").Update)
}

func TestWithPassword(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"nats://a@h:1", "nats://a:p%2Fw@h:1", true},
		{"nats://a@h:1, tls://b@g:2", "nats://a:p%2Fw@h:1,tls://b:p%2Fw@g:2", true},
		{"nats://a:old@h:1", "nats://a:old@h:1", false},
		{"nats://h:1", "nats://h:1", false},
		{"nats://h:1,nats://a@g:2", "nats://h:1,nats://a:p%2Fw@g:2", true},
	} {
		got, ok := WithPassword(tc.in, "p/w")
		if got != tc.want || ok != tc.ok {
			t.Errorf("WithPassword(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if got, ok := WithPassword("nats://a@h:1", ""); got != "nats://a@h:1" || ok {
		t.Errorf("empty password: %q, %v", got, ok)
	}
	for _, tc := range []struct {
		in             string
		pass, userOnly bool
	}{{"nats://h:1", false, false}, {"nats://a@h:1", false, true}, {"nats://a:b@h:1,nats://c@h:2", true, true}} {
		if p, u := URLHasPassword(tc.in); p != tc.pass || u != tc.userOnly {
			t.Errorf("URLHasPassword(%q) = %v, %v", tc.in, p, u)
		}
	}
}

// DialOptions.Password completes a URL with a user and no password; a
// wrong password is refused with an error that names the user, not the
// password.
func TestDialPassword(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{Users: roleUsers(t)})
	host := strings.TrimPrefix(e.URL(), "nats://")
	c, err := DialWith("nats://cli@"+host, "t", DialOptions{Password: "cli-secret"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = DialWith("nats://cli@"+host, "t", DialOptions{Password: "wrong-secret", Timeout: time.Second})
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), "nats://cli@"+host) || !strings.Contains(err.Error(), "refused the user and password") {
		t.Errorf("wrong password: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("the error gives the password away: %v", err)
	}
	// A password in the URL wins.
	c, err = DialWith("nats://cli:cli-secret@"+host, "t", DialOptions{Password: "wrong-secret"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// testPKI writes a self-signed CA and a server certificate for 127.0.0.1
// and localhost signed by it; it returns the server's TLS configuration
// and the CA's PEM file.
func testPKI(t *testing.T) (*tls.Config, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fotsim test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fotsim test server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, caFile
}

// An embedded server with TLS: a connection with the CA file verifies the
// server's certificate and works; without it, or with another CA, it is
// refused with an error that says what to do; a connection that requires TLS (a CA file) to a server
// without TLS is refused too.
func TestTLS(t *testing.T) {
	cfg, caFile := testPKI(t)
	_, otherCA := testPKI(t)
	all := User{Name: "srv", Password: "srv-secret", Publish: []string{">"}, Subscribe: []string{">"}}
	e := startEmbedded(t, EmbeddedOptions{TLS: cfg, Users: []User{all}})
	if !strings.HasPrefix(e.URL(), "tls://127.0.0.1:") {
		t.Fatalf("URL %q, want tls://127.0.0.1:PORT", e.URL())
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.URL(), "tls://"))

	for _, url := range []string{"tls://srv@127.0.0.1:" + port, "nats://srv@127.0.0.1:" + port, "tls://srv@localhost:" + port} {
		c, err := DialWith(url, "t", DialOptions{CAFile: caFile, Password: "srv-secret"})
		if err != nil {
			t.Fatalf("%s with the CA: %v", url, err)
		}
		ch := collect(t, c, SubjectsFor("r").Update)
		if _, err := c.Publish(SubjectsFor("r").Update, &Message{Kind: KindUpdate, Round: 3}); err != nil {
			t.Fatal(err)
		}
		if d := next(t, ch); d.err != nil || d.m.Round != 3 {
			t.Errorf("%s: got %+v", url, d)
		}
		c.Close()
	}

	for _, tc := range []struct {
		name, url, ca, want string
	}{
		{"plain URL, no CA", "nats://srv:srv-secret@127.0.0.1:" + port, "", "not signed by a CA this machine trusts"},
		{"tls URL, no CA", "tls://srv:srv-secret@127.0.0.1:" + port, "", "--nats-ca FILE"},
		{"another CA", "tls://srv:srv-secret@127.0.0.1:" + port, otherCA, "not signed by the CA of " + otherCA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DialWith(tc.url, "t", DialOptions{CAFile: tc.ca, Timeout: time.Second})
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrConnect and %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "srv-secret") {
				t.Errorf("the error gives the password away: %v", err)
			}
		})
	}

	plain := startEmbedded(t, EmbeddedOptions{})
	if c, err := DialWith(plain.URL(), "t", DialOptions{CAFile: caFile, Timeout: time.Second}); err == nil {
		c.Close()
		t.Error("a connection with a CA file to a server without TLS was not refused")
	} else if !strings.Contains(err.Error(), "the server does not offer it") {
		t.Errorf("to a server without TLS: %v", err)
	}

	for _, bad := range []string{filepath.Join(t.TempDir(), "none.pem"), writeFile(t, "not a certificate")} {
		if _, err := DialWith(e.URL(), "t", DialOptions{CAFile: bad}); !errors.Is(err, ErrOptions) {
			t.Errorf("CA file %s: %v, want ErrOptions", bad, err)
		}
	}
	if err := (EmbeddedOptions{TLS: &tls.Config{}}).Validate(); !errors.Is(err, ErrOptions) {
		t.Errorf("TLS without a certificate: %v", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

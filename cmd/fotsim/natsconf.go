package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/fotsim/fotsim/transport"
)

func init() {
	register(command{name: "natsconf", usage: "[flags]          print a nats-server config with fotsim's server and client roles", order: 18, run: cmdNatsconf})
}

// Users of the config fotsim natsconf prints.
const (
	natsServerUser = "fotsim-server"
	natsClientUser = "fotsim-client"
)

const natsconfUsage = `Usage: fotsim natsconf [--server-password P] [--client-password Q] [--listen HOST:PORT]

Prints a nats-server config (nats-server -c FILE) whose authorization block
has two users: fotsim-server, which may only publish rounds, stops, join
answers, metrics and announcements and subscribe to updates and host
reports, and fotsim-client, which may only publish updates and host reports
and subscribe to rounds, join answers and announcements. A password not
given is generated at random; both are in the config's comments, with the
URLs to give fotsim server --nats and fotsim client --nats. The config holds
the passwords in clear: keep it readable by its owner only.

Flags:
`

func cmdNatsconf(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("natsconf", natsconfUsage, stderr)
	serverPass := fs.String("server-password", "", "password of user "+natsServerUser+" (default: generated)")
	clientPass := fs.String("client-password", "", "password of user "+natsClientUser+" (default: generated)")
	listen := fs.String("listen", "0.0.0.0:4222", "the config's listen address")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return usagef("natsconf takes no arguments, got %q", fs.Args())
	}
	if err := checkConfToken("--listen", *listen, `"\'$`); err != nil {
		return err
	}
	for _, p := range []*string{serverPass, clientPass} {
		if *p == "" {
			*p = newPassword()
		}
	}
	for flag, p := range map[string]string{"--server-password": *serverPass, "--client-password": *clientPass} {
		if err := checkConfToken(flag, p, `"\@:/?#%$'`); err != nil {
			return err
		}
	}
	srv, err := transport.RoleUser(transport.RoleServer, natsServerUser, *serverPass)
	if err != nil {
		return err
	}
	cli, err := transport.RoleUser(transport.RoleClient, natsClientUser, *clientPass)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, natsConfig(*listen, srv, cli))
	return err
}

// natsConfig returns a nats-server config listening on listen with users.
func natsConfig(listen string, users ...transport.User) string {
	var b strings.Builder
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = listen, "4222"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "HOST"
	}
	b.WriteString("# nats-server config for fotsim (fotsim natsconf); run: nats-server -c FILE\n")
	b.WriteString("# It holds passwords: keep it readable by its owner only.\n#\n")
	for _, u := range users {
		fmt.Fprintf(&b, "# %s: nats://%s:%s@%s\n", u.Name, u.Name, u.Password, net.JoinHostPort(host, port))
	}
	fmt.Fprintf(&b, "\nlisten: %q\n\nauthorization {\n  users = [\n", listen)
	for _, u := range users {
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: %q\n      permissions: {\n", u.Name, u.Password)
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", confList(u.Publish))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", confList(u.Subscribe))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func confList(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// newPassword returns 24 random bytes in URL-safe base64 (32 characters).
func newPassword() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// checkConfToken refuses values that a double-quoted config string or a
// URL's user info would need escapes for: white space, non-ASCII and the
// bytes of bad.
func checkConfToken(flag, v, bad string) error {
	if v == "" {
		return usagef("natsconf: %s is empty", flag)
	}
	for _, c := range v {
		if c <= ' ' || c > '~' || strings.ContainsRune(bad, c) {
			return usagef("natsconf: %s: %q is not allowed (use printable ASCII without spaces or any of %s)", flag, c, bad)
		}
	}
	return nil
}

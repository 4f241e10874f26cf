package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/fotsim/fotsim/transport"
)

func init() {
	register(command{name: "natsconf", usage: "[flags]          print a nats-server config with fotsim's server, client and viewer roles", order: 18, run: cmdNatsconf})
}

// Users of the config fotsim natsconf prints.
const (
	natsServerUser = "fotsim-server"
	natsClientUser = "fotsim-client"
	natsViewerUser = "fotsim-viewer"
	// natsClientUser + "-" + NAME: a client host's own user (--client-users,
	// --client-hosts).
	natsHostUserPrefix = natsClientUser + "-"
	maxHostUsers       = 4096
)

const natsconfUsage = `Usage: fotsim natsconf [--server-password P] [--client-password Q] [--viewer-password V]
       [--client-users NAME,...] [--client-hosts N] [--listen HOST:PORT]

Prints a nats-server config (nats-server -c FILE) whose authorization block
has a user per role: fotsim-server, which may only publish rounds, stops,
join answers, metrics and announcements and subscribe to updates and host
reports; fotsim-client, which may only publish updates and host reports and
subscribe to rounds, join answers and announcements; and fotsim-viewer (for
fotsim serve --nats), which may only subscribe to metrics and announcements
and publish nothing.

--client-users a,b adds a user per client host, fotsim-client-a and
fotsim-client-b, and --client-hosts N the users fotsim-client-1 to
fotsim-client-N: each has the client role's permissions and a password of
its own, so that one host's credentials can be revoked (its block deleted,
then nats-server --signal reload) without touching the others'.

A password not given is generated at random (per-host users always get
generated ones); all are in the config's comments, with the URLs to give
fotsim server, client and serve --nats (or give the URL without the
password, nats://USER@HOST:4222, and the password in --nats-password-file or
FOTSIM_NATS_PASSWORD). The config holds the passwords in clear: keep it
readable by its owner only.

Flags:
`

func cmdNatsconf(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("natsconf", natsconfUsage, stderr)
	serverPass := fs.String("server-password", "", "password of user "+natsServerUser+" (default: generated)")
	clientPass := fs.String("client-password", "", "password of user "+natsClientUser+" (default: generated)")
	viewerPass := fs.String("viewer-password", "", "password of user "+natsViewerUser+" (default: generated)")
	hostNames := fs.String("client-users", "", "comma-separated `NAMES` of client hosts: a user "+natsHostUserPrefix+"NAME each, with a generated password")
	hosts := fs.Int("client-hosts", 0, "`N` client hosts: users "+natsHostUserPrefix+"1 to "+natsHostUserPrefix+"N, with generated passwords")
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
	names, err := hostUserNames(*hostNames, *hosts)
	if err != nil {
		return err
	}
	for _, p := range []*string{serverPass, clientPass, viewerPass} {
		if *p == "" {
			*p = newPassword()
		}
	}
	for flag, p := range map[string]string{"--server-password": *serverPass, "--client-password": *clientPass, "--viewer-password": *viewerPass} {
		if err := checkConfToken(flag, p, `"\@:/?#%$'`); err != nil {
			return err
		}
	}
	var users []transport.User
	for _, u := range []struct{ role, name, pass string }{
		{transport.RoleServer, natsServerUser, *serverPass},
		{transport.RoleClient, natsClientUser, *clientPass},
		{transport.RoleViewer, natsViewerUser, *viewerPass},
	} {
		user, err := transport.RoleUser(u.role, u.name, u.pass)
		if err != nil {
			return err
		}
		users = append(users, user)
	}
	for _, n := range names {
		user, err := transport.RoleUser(transport.RoleClient, natsHostUserPrefix+n, newPassword())
		if err != nil {
			return err
		}
		users = append(users, user)
	}
	_, err = io.WriteString(stdout, natsConfig(*listen, users...))
	return err
}

// hostUserNames returns the client hosts' names of --client-users list
// and --client-hosts n (1 to n), each once.
func hostUserNames(list string, n int) ([]string, error) {
	if n < 0 || n > maxHostUsers {
		return nil, usagef("natsconf: --client-hosts %d, want 0 to %d", n, maxHostUsers)
	}
	var names []string
	if list != "" {
		for name := range strings.SplitSeq(list, ",") {
			if name == "" || len(name) > 64 || strings.IndexFunc(name, func(c rune) bool {
				return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
			}) >= 0 {
				return nil, usagef("natsconf: --client-users: host name %q, want 1 to 64 letters, digits, '-', '_' or '.'", name)
			}
			names = append(names, name)
		}
	}
	for i := 1; i <= n; i++ {
		names = append(names, strconv.Itoa(i))
	}
	if len(names) > maxHostUsers {
		return nil, usagef("natsconf: %d client host users, want at most %d", len(names), maxHostUsers)
	}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			return nil, usagef("natsconf: client host user %s%s given twice (--client-users, --client-hosts)", natsHostUserPrefix, name)
		}
		seen[name] = true
	}
	return names, nil
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
		fmt.Fprintf(&b, "        publish: %s\n", confPermission(u.Publish))
		fmt.Fprintf(&b, "        subscribe: %s\n", confPermission(u.Subscribe))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// confPermission allows exactly subjects; none when empty (where an empty
// allow list would allow everything, as no list does).
func confPermission(subjects []string) string {
	if len(subjects) == 0 {
		return `{ deny: [">"] }`
	}
	return "{ allow: " + confList(subjects) + " }"
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

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fotsim/fotsim/transport"
)

// fotsim natsconf prints a config nats-server's own parser reads, with the
// three users and their roles' permissions; passwords not given are
// generated, and differ.
func TestNatsconf(t *testing.T) {
	for _, tc := range []struct {
		args                 []string
		server, user, viewer string // want passwords; "" means generated
	}{
		{[]string{"natsconf", "--server-password", "P1", "--client-password", "Q2", "--viewer-password", "V3"}, "P1", "Q2", "V3"},
		{[]string{"natsconf"}, "", "", ""},
	} {
		out, opts := natsconfOptions(t, tc.args...)
		if len(opts.Users) != 3 {
			t.Fatalf("%q: %d users, want 3", tc.args, len(opts.Users))
		}
		want := map[string]struct{ role, pass string }{
			natsServerUser: {transport.RoleServer, tc.server},
			natsClientUser: {transport.RoleClient, tc.user},
			natsViewerUser: {transport.RoleViewer, tc.viewer},
		}
		passwords := map[string]bool{}
		for _, u := range opts.Users {
			w, ok := want[u.Username]
			if !ok {
				t.Fatalf("user %q", u.Username)
			}
			if w.pass != "" && u.Password != w.pass || len(u.Password) < 16 && w.pass == "" {
				t.Errorf("%q: user %s has password %q", tc.args, u.Username, u.Password)
			}
			passwords[u.Password] = true
			if !strings.Contains(out, "nats://"+u.Username+":"+u.Password+"@HOST:4222") {
				t.Errorf("%q: the comments lack %s's URL:\n%s", tc.args, u.Username, out)
			}
			checkRole(t, u, w.role)
		}
		if len(passwords) != 3 {
			t.Error("two passwords are equal")
		}
	}
	var out, errb bytes.Buffer
	if code := exitCode(run(context.Background(), []string{"natsconf", "--client-password", `a"b`}, &out, &errb), &errb); code != 2 {
		t.Errorf("a quote in a password: exit code %d, want 2", code)
	}
}

// natsconfOptions runs fotsim natsconf with args and returns its output
// and the options nats-server reads from it.
func natsconfOptions(t *testing.T, args ...string) (string, *server.Options) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := exitCode(run(context.Background(), args, &out, &errb), &errb); code != 0 {
		t.Fatalf("%q: exit code %d; stderr:\n%s", args, code, errb.String())
	}
	path := filepath.Join(t.TempDir(), "fotsim.conf")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%q: nats-server cannot read the config: %v\n%s", args, err, out.String())
	}
	return out.String(), opts
}

// checkRole checks that u has exactly role's permissions: the subjects
// allowed, and for an empty list everything denied.
func checkRole(t *testing.T, u *server.User, role string) {
	t.Helper()
	pub, sub, _ := transport.RolePermissions(role)
	p := u.Permissions
	if p == nil || p.Publish == nil || p.Subscribe == nil {
		t.Fatalf("user %s has permissions %+v", u.Username, p)
	}
	for _, x := range []struct {
		what string
		perm *server.SubjectPermission
		want []string
	}{{"publish", p.Publish, pub}, {"subscribe", p.Subscribe, sub}} {
		ok := slices.Equal(x.perm.Allow, x.want) && len(x.perm.Deny) == 0
		if len(x.want) == 0 {
			ok = len(x.perm.Allow) == 0 && slices.Equal(x.perm.Deny, []string{">"})
		}
		if !ok {
			t.Errorf("user %s may %s: %+v, want exactly %q", u.Username, x.what, x.perm, x.want)
		}
	}
}

// --client-users and --client-hosts add a user per client host with the
// client role and a password of its own. On a nats-server running the
// config with one host's block deleted (revoked), that host is refused
// and the others work; the viewer may read metrics but publish nothing.
func TestNatsconfHostUsers(t *testing.T) {
	_, opts := natsconfOptions(t, "natsconf", "--client-users", "gpu-a,gpu_b.lab", "--client-hosts", "2", "--listen", "127.0.0.1:4222")
	hosts := []string{"fotsim-client-gpu-a", "fotsim-client-gpu_b.lab", "fotsim-client-1", "fotsim-client-2"}
	if len(opts.Users) != 3+len(hosts) {
		t.Fatalf("%d users, want %d", len(opts.Users), 3+len(hosts))
	}
	pass := map[string]string{}
	seen := map[string]bool{}
	for _, u := range opts.Users {
		pass[u.Username] = u.Password
		if seen[u.Password] || len(u.Password) < 16 {
			t.Errorf("user %s: password %q repeated or short", u.Username, u.Password)
		}
		seen[u.Password] = true
		if strings.HasPrefix(u.Username, natsClientUser+"-") {
			checkRole(t, u, transport.RoleClient)
		}
	}
	for _, h := range hosts {
		if pass[h] == "" {
			t.Errorf("no user %s", h)
		}
	}

	// Revoke fotsim-client-1: its block goes.
	opts.Users = slices.DeleteFunc(opts.Users, func(u *server.User) bool { return u.Username == "fotsim-client-1" })
	opts.Port, opts.NoLog, opts.NoSigs = server.RANDOM_PORT, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	host := ns.Addr().String()
	url := func(user string) string { return "nats://" + user + ":" + pass[user] + "@" + host }
	if c, err := transport.DialWith(url("fotsim-client-1"), "t", transport.DialOptions{Timeout: time.Second}); err == nil {
		c.Close()
		t.Error("the revoked host's user connected")
	}
	subj := transport.SubjectsFor("r")
	for _, u := range []string{"fotsim-client-gpu-a", "fotsim-client-2", natsClientUser} {
		c, err := transport.Dial(url(u), "t")
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if _, err := c.SubscribeRaw(subj.Round, func(string, []byte) {}); err != nil {
			t.Fatal(err)
		}
		if err := c.PublishRaw(subj.Update, []byte("u")); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
			t.Errorf("%s: %v", u, c.Err())
		case <-time.After(200 * time.Millisecond):
		}
		c.Close()
	}
	// The viewer: metrics yes, a publish (on any subject) no.
	c, err := transport.Dial(url(natsViewerUser), "t")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SubscribeRaw(transport.MetricsWildcard, func(string, []byte) {}); err != nil {
		t.Fatal(err)
	}
	_ = c.PublishRaw("anything.at.all", []byte("x"))
	_ = c.Flush()
	select {
	case <-c.Done():
		if err := c.Err(); !errors.Is(err, transport.ErrPermission) || !strings.Contains(err.Error(), `user "fotsim-viewer" publish to "anything.at.all"`) {
			t.Errorf("viewer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the viewer's publish was not refused")
	}

	for _, args := range [][]string{
		{"--client-users", "a,a"}, {"--client-users", "a b"}, {"--client-users", "a,"}, {"--client-users", "x:y"},
		{"--client-hosts", "-1"}, {"--client-hosts", "5000"}, {"--client-users", "1", "--client-hosts", "1"},
	} {
		var out, errb bytes.Buffer
		if code := exitCode(run(context.Background(), append([]string{"natsconf"}, args...), &out, &errb), &errb); code != 2 {
			t.Errorf("%q: exit code %d, want 2", args, code)
		}
	}
}

// fotsim server and two client processes with the credentials of their
// roles complete a run whose records are fotsim run's; the client
// credentials cannot publish rounds nor read updates. The server's
// password is in --nats-password-file; one client uses a host's own user
// with its password in $FOTSIM_NATS_PASSWORD, the other the shared
// fotsim-client with the password in the URL.
func TestServerAndClientsWithCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fotsim and runs three processes")
	}
	srvUser, err := transport.RoleUser(transport.RoleServer, natsServerUser, "srv-pass")
	if err != nil {
		t.Fatal(err)
	}
	cliUser, err := transport.RoleUser(transport.RoleClient, natsClientUser, "cli-pass")
	if err != nil {
		t.Fatal(err)
	}
	hostUser, err := transport.RoleUser(transport.RoleClient, natsHostUserPrefix+"a", "host-a-pass")
	if err != nil {
		t.Fatal(err)
	}
	emb, err := transport.StartEmbeddedWith(transport.EmbeddedOptions{Host: "127.0.0.1", Users: []transport.User{srvUser, cliUser, hostUser}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	hostPort := strings.TrimPrefix(emb.URL(), "nats://")
	srvURL := "nats://" + natsServerUser + "@" + hostPort
	cliURL := "nats://" + natsClientUser + ":cli-pass@" + hostPort
	hostURL := "nats://" + natsHostUserPrefix + "a@" + hostPort
	srvPassFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(srvPassFile, []byte("srv-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(passwordEnv, "host-a-pass") // the client processes inherit it; the server's file wins

	// Client credentials: a round published on a run's subject and a
	// subscription to its updates are refused by NATS.
	violations := make(chan error, 4)
	nc, err := nats.Connect(cliURL, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj := transport.SubjectsFor("attack")
	if err := nc.Publish(subj.Round, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(subj.Update, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	for _, what := range []string{"Publish to \"" + subj.Round + "\"", "Subscription to \"" + subj.Update + "\""} {
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), what) {
				t.Errorf("got %v, want a permissions violation for %s", err, what)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no permissions violation for %s", what)
		}
	}
	if _, err := nats.Connect("nats://"+natsClientUser+":wrong@"+hostPort, nats.NoReconnect()); err == nil {
		t.Error("a wrong password connected")
	}

	bin := buildFotsim(t)
	clients := []*lockedBuffer{startClient(t, bin, hostURL, "0-1"), startClient(t, bin, cliURL, "2-3")}
	flags := []string{"--quiet", "--no-plots", "--no-report", "--set", "methods=[fedavg,fot]"}
	ref := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"run", "synthetic", "--out", ref}, flags...), &stdout, &stderr); err != nil {
		t.Fatalf("fotsim run: %v\n%s", err, stderr.String())
	}
	got := t.TempDir()
	srv := exec.Command(bin, append([]string{"server", "synthetic", "--nats", srvURL, "--nats-password-file", srvPassFile, "--wait", "2m", "--out", got}, flags...)...)
	var srvErr bytes.Buffer
	srv.Stderr = &srvErr
	if err := srv.Run(); err != nil {
		for i, c := range clients {
			t.Logf("client %d:\n%s", i, c.String())
		}
		t.Fatalf("fotsim server: %v\nstderr:\n%s", err, srvErr.String())
	}
	want, have := recordFiles(t, ref), recordFiles(t, got)
	if len(want) == 0 || len(have) != len(want) {
		t.Fatalf("%d record files from the server, %d from fotsim run", len(have), len(want))
	}
	for name, w := range want {
		if !bytes.Equal(have[name], w) {
			t.Errorf("%s differs from fotsim run's:\ngot:\n%s\nwant:\n%s", name, have[name], w)
		}
	}
	// The record does not give the password away.
	yamls, _ := filepath.Glob(filepath.Join(got, "*", "scenario.yaml"))
	for _, p := range yamls {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("-pass")) || !bytes.Contains(b, []byte(natsServerUser+":xxxxx@")) {
			t.Errorf("%s: transport.nats not redacted:\n%s", p, b)
		}
	}
	if len(yamls) == 0 {
		t.Errorf("no scenario.yaml under %s", got)
	}
	for i, c := range clients {
		if out := c.String(); strings.Contains(out, "-pass") || !strings.Contains(out, "waiting for runs announced on nats://") {
			t.Errorf("client %d's output:\n%s", i, out)
		}
	}
	if strings.Contains(srvErr.String(), "-pass") {
		t.Errorf("the server's stderr gives a password away:\n%s", srvErr.String())
	}
}

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
// two users and their roles' permissions; passwords not given are
// generated, and differ.
func TestNatsconf(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		server, user string // want passwords; "" means generated
	}{
		{[]string{"natsconf", "--server-password", "P1", "--client-password", "Q2"}, "P1", "Q2"},
		{[]string{"natsconf"}, "", ""},
	} {
		var out, errb bytes.Buffer
		if code := exitCode(run(context.Background(), tc.args, &out, &errb), &errb); code != 0 {
			t.Fatalf("%q: exit code %d; stderr:\n%s", tc.args, code, errb.String())
		}
		path := filepath.Join(t.TempDir(), "fotsim.conf")
		if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("%q: nats-server cannot read the config: %v\n%s", tc.args, err, out.String())
		}
		if len(opts.Users) != 2 {
			t.Fatalf("%q: %d users, want 2", tc.args, len(opts.Users))
		}
		want := map[string]struct{ role, pass string }{
			natsServerUser: {transport.RoleServer, tc.server},
			natsClientUser: {transport.RoleClient, tc.user},
		}
		for _, u := range opts.Users {
			w, ok := want[u.Username]
			if !ok {
				t.Fatalf("user %q", u.Username)
			}
			if w.pass != "" && u.Password != w.pass || len(u.Password) < 16 && w.pass == "" {
				t.Errorf("%q: user %s has password %q", tc.args, u.Username, u.Password)
			}
			if !strings.Contains(out.String(), "nats://"+u.Username+":"+u.Password+"@HOST:4222") {
				t.Errorf("%q: the comments lack %s's URL:\n%s", tc.args, u.Username, out.String())
			}
			pub, sub, _ := transport.RolePermissions(w.role)
			p := u.Permissions
			if p == nil || p.Publish == nil || p.Subscribe == nil || !slices.Equal(p.Publish.Allow, pub) || !slices.Equal(p.Subscribe.Allow, sub) || len(p.Publish.Deny)+len(p.Subscribe.Deny) != 0 {
				t.Errorf("%q: user %s has permissions %+v, want publish %q, subscribe %q", tc.args, u.Username, p, pub, sub)
			}
		}
		if tc.server == "" && opts.Users[0].Password == opts.Users[1].Password {
			t.Error("the generated passwords are equal")
		}
	}
	var out, errb bytes.Buffer
	if code := exitCode(run(context.Background(), []string{"natsconf", "--client-password", `a"b`}, &out, &errb), &errb); code != 2 {
		t.Errorf("a quote in a password: exit code %d, want 2", code)
	}
}

// fotsim server and two client processes with the credentials of their
// roles complete a run whose records are fotsim run's; the client
// credentials cannot publish rounds nor read updates.
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
	emb, err := transport.StartEmbeddedWith(transport.EmbeddedOptions{Host: "127.0.0.1", Users: []transport.User{srvUser, cliUser}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	hostPort := strings.TrimPrefix(emb.URL(), "nats://")
	srvURL := "nats://" + natsServerUser + ":srv-pass@" + hostPort
	cliURL := "nats://" + natsClientUser + ":cli-pass@" + hostPort

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
	clients := []*lockedBuffer{startClient(t, bin, cliURL, "0-1"), startClient(t, bin, cliURL, "2-3")}
	flags := []string{"--quiet", "--no-plots", "--no-report", "--set", "methods=[fedavg,fot]"}
	ref := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"run", "synthetic", "--out", ref}, flags...), &stdout, &stderr); err != nil {
		t.Fatalf("fotsim run: %v\n%s", err, stderr.String())
	}
	got := t.TempDir()
	srv := exec.Command(bin, append([]string{"server", "synthetic", "--nats", srvURL, "--wait", "2m", "--out", got}, flags...)...)
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
		if bytes.Contains(b, []byte("srv-pass")) || !bytes.Contains(b, []byte(natsServerUser+":xxxxx@")) {
			t.Errorf("%s: transport.nats not redacted:\n%s", p, b)
		}
	}
	if len(yamls) == 0 {
		t.Errorf("no scenario.yaml under %s", got)
	}
}

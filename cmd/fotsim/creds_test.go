package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// credsServer starts an embedded NATS server (TCP, loopback) with the
// users fotsim-server, fotsim-client-a (a client host's own user),
// fotsim-viewer and "nopub" (the client role without the right to publish
// updates), each with password NAME-secret, and returns its host:port.
func credsServer(t *testing.T) string {
	t.Helper()
	var users []transport.User
	for _, u := range []struct{ role, name string }{
		{transport.RoleServer, natsServerUser}, {transport.RoleClient, natsHostUserPrefix + "a"}, {transport.RoleViewer, natsViewerUser},
	} {
		user, err := transport.RoleUser(u.role, u.name, u.name+"-secret")
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, user)
	}
	nopub := users[1]
	nopub.Name, nopub.Password, nopub.Publish = "nopub", "nopub-secret", []string{transport.SubjectPrefix + ".*.hosts"}
	emb, err := transport.StartEmbeddedWith(transport.EmbeddedOptions{Host: "127.0.0.1", Users: append(users, nopub)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	return strings.TrimPrefix(emb.URL(), "nats://")
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Where the password comes from: --nats-password-file, else
// $FOTSIM_NATS_PASSWORD, for a URL with a user and no password; a
// password in the URL wins over the variable, and with the file it is
// refused.
func TestNATSPasswordSources(t *testing.T) {
	t.Setenv(passwordEnv, "from-env")
	file := writeSecret(t, "from-file\n")
	for _, tc := range []struct {
		name, url, file, want, err string
	}{
		{"env", "nats://u@h:1", "", "from-env", ""},
		{"file wins over env", "nats://u@h:1", file, "from-file", ""},
		{"URL wins over env", "nats://u:p@h:1", "", "", ""},
		{"no user: no password", "nats://h:1", "", "", ""},
		{"URL and file", "nats://u:p@h:1", file, "", "give it in one place"},
		{"file without user", "nats://h:1", file, "", "needs a user in the --nats URL"},
		{"missing file", "nats://u@h:1", filepath.Join(t.TempDir(), "none"), "", "no such file"},
		{"empty file", "nats://u@h:1", writeSecret(t, "\n"), "", "want the password alone on one line"},
		{"two lines", "nats://u@h:1", writeSecret(t, "a\nb\n"), "", "want the password alone on one line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			a := addNATSAuth(fs, false)
			*a.passwordFile = tc.file
			o, err := a.dialOptions("client", tc.url)
			if tc.err != "" {
				var u usageError
				if err == nil || !errors.As(err, &u) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want a usage error with %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "from-file") {
					t.Errorf("the error gives the password away: %v", err)
				}
				return
			}
			if err != nil || o.Password != tc.want {
				t.Errorf("password %q, %v; want %q", o.Password, err, tc.want)
			}
		})
	}
}

// fotsim server with its password in --nats-password-file and fotsim
// client with a client host's own user and the password in
// $FOTSIM_NATS_PASSWORD complete a run; neither the output nor the record
// holds a password. A wrong password file fails at once, without
// printing it.
func TestPasswordsOutOfCommandLines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server and a client")
	}
	host := credsServer(t)
	t.Setenv(passwordEnv, natsHostUserPrefix+"a-secret") // the client's; the server's file wins
	srvFile := writeSecret(t, natsServerUser+"-secret\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cliOut lockedBuffer
	cliDone := make(chan error, 1)
	go func() {
		cliDone <- run(ctx, []string{"client", "--nats", "nats://" + natsHostUserPrefix + "a@" + host, "--clients", "0-3", "--workers", "1", "--once", "--name", "host-a"}, &cliOut, &cliOut)
	}()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"server", "synthetic", "--nats", "nats://" + natsServerUser + "@" + host, "--nats-password-file", srvFile,
		"--wait", "1m", "--quiet", "--no-plots", "--no-report", "--out", out, "--set", "methods=fedavg", "--set", "train.rounds_per_task=1"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("fotsim server: %v\nstderr:\n%s\nclient:\n%s", err, stderr.String(), cliOut.String())
	}
	select {
	case err := <-cliDone:
		if err != nil {
			t.Fatalf("fotsim client: %v\n%s", err, cliOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("fotsim client --once did not end:\n%s", cliOut.String())
	}
	if !strings.Contains(stdout.String(), "Summary of synthetic") || !strings.Contains(stderr.String(), "client host host-a (clients 0-3) joined") {
		t.Logf("server stdout:\n%s", stdout.String())
		t.Errorf("server stderr:\n%s", stderr.String())
	}
	record, _ := filepath.Glob(filepath.Join(out, "*"))
	var all bytes.Buffer
	for _, p := range record {
		b, _ := os.ReadFile(p)
		all.Write(b)
	}
	if !bytes.Contains(all.Bytes(), []byte("nats://"+natsServerUser+":xxxxx@"+host)) {
		t.Errorf("scenario.yaml lacks the redacted URL:\n%s", all.String())
	}
	for what, b := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String(), "client": cliOut.String(), "record": all.String()} {
		if strings.Contains(b, "-secret") {
			t.Errorf("%s gives a password away:\n%s", what, b)
		}
	}

	// A wrong password: refused at once, the password not printed.
	bad := writeSecret(t, "wrong-secret")
	for _, args := range [][]string{
		{"server", "synthetic", "--nats", "nats://" + natsServerUser + "@" + host, "--nats-password-file", bad, "--quiet", "--out", t.TempDir()},
		{"client", "--nats", "nats://" + natsHostUserPrefix + "a@" + host, "--nats-password-file", bad, "--clients", "0"},
	} {
		var out, errb bytes.Buffer
		start := time.Now()
		code := exitCode(run(context.Background(), args, &out, &errb), &errb)
		if code != 1 || !strings.Contains(errb.String(), "refused the user and password") || strings.Contains(errb.String()+out.String(), "-secret") {
			t.Errorf("%s with a wrong password: exit code %d; stderr:\n%s", args[0], code, errb.String())
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s with a wrong password took %v", args[0], d)
		}
	}
}

// A client host with credentials that do not let it take part (the
// viewer's; a user without the right to publish updates) fails fast with
// an error naming the user and the refused subject, instead of waiting
// for messages that cannot come.
func TestClientRefusedFailsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server and clients")
	}
	host := credsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvDone := make(chan error, 1)
	var srvErr lockedBuffer
	go func() {
		srvDone <- run(ctx, []string{"server", "synthetic", "--nats", "nats://" + natsServerUser + ":" + natsServerUser + "-secret@" + host,
			"--wait", "1m", "--quiet", "--no-plots", "--no-report", "--out", t.TempDir(), "--set", "methods=fedavg"}, io.Discard, &srvErr)
	}()
	defer func() {
		cancel()
		select {
		case <-srvDone:
		case <-time.After(20 * time.Second):
			t.Error("the server did not stop")
		}
	}()
	for _, tc := range []struct {
		user string
		want *regexp.Regexp
	}{
		// The viewer hears the announcement but may not read the join
		// answers (nor publish its hello).
		{natsViewerUser, regexp.MustCompile(`NATS permissions violation: the NATS server nats://fotsim-viewer:xxxxx@[0-9.:]+ does not let user "fotsim-viewer" (subscribe to "fotsim\.[^"]+\.join"|publish to "fotsim\.[^"]+\.hosts")`)},
		// nopub joins and trains, then may not publish its updates.
		{"nopub", regexp.MustCompile(`does not let user "nopub" publish to "fotsim\.[^"]+\.update"`)},
	} {
		t.Run(tc.user, func(t *testing.T) {
			var out lockedBuffer
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				done <- run(ctx, []string{"client", "--nats", "nats://" + tc.user + ":" + tc.user + "-secret@" + host, "--clients", "0-3", "--workers", "1"}, &out, &out)
			}()
			select {
			case err := <-done:
				var errb bytes.Buffer
				if code := exitCode(err, &errb); code != 1 {
					t.Errorf("exit code %d, want 1", code)
				}
				if !tc.want.MatchString(errb.String()) {
					t.Errorf("error %q, want %q; output:\n%s", errb.String(), tc.want, out.String())
				}
				if strings.Contains(errb.String()+out.String(), "-secret") {
					t.Errorf("the password is printed:\n%s%s", errb.String(), out.String())
				}
				t.Logf("failed after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errb.String()))
			case <-time.After(30 * time.Second):
				t.Fatalf("the client did not fail; output:\n%s\nserver:\n%s", out.String(), srvErr.String())
			}
		})
	}
}

// fotsim serve --nats with the viewer's credentials shows the metrics
// runs publish, and does not show the password; with credentials that may
// not read metrics it exits with the permissions violation.
func TestServeViewer(t *testing.T) {
	host := credsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--nats", "nats://" + natsViewerUser + ":" + natsViewerUser + "-secret@" + host, t.TempDir()}, &stdout, io.Discard)
	}()
	re := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+)/`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve printed no address: %q", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status, body := get(t, base+"/live"); status != 200 || strings.Contains(body, "-secret") || !strings.Contains(body, natsViewerUser+":xxxxx@") {
		t.Fatalf("GET /live: %d, the source is not shown redacted:\n%s", status, body)
	}
	resp, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pub, err := transport.Dial("nats://"+natsServerUser+":"+natsServerUser+"-secret@"+host, "run")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publishAndStop(t, pub, resp, cancel, done)

	// A client host's user may not read metrics: serve ends with why.
	var errb bytes.Buffer
	err = run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--nats", "nats://" + natsHostUserPrefix + "a@" + host,
		"--nats-password-file", writeSecret(t, natsHostUserPrefix+"a-secret"), t.TempDir()}, io.Discard, &errb)
	if code := exitCode(err, &errb); code != 1 || !strings.Contains(errb.String(), `does not let user "fotsim-client-a" subscribe to "fotsim.*.metrics"`) {
		t.Errorf("serve with a client's user: exit code %d:\n%s", code, errb.String())
	}
}

// fotsim client, serve and server reach a NATS server with TLS through a tls://
// URL and --nats-ca (the self-signed CA of its certificate); without
// --nats-ca the certificate is not trusted and they exit with what to do.
func TestNATSCA(t *testing.T) {
	cfg, caFile, err := transporttest.TLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := transport.RoleUser(transport.RoleViewer, natsViewerUser, "viewer-secret")
	if err != nil {
		t.Fatal(err)
	}
	client, err := transport.RoleUser(transport.RoleClient, natsClientUser, "client-secret")
	if err != nil {
		t.Fatal(err)
	}
	server, err := transport.RoleUser(transport.RoleServer, natsServerUser, "server-secret")
	if err != nil {
		t.Fatal(err)
	}
	emb, err := transport.StartEmbeddedWith(transport.EmbeddedOptions{TLS: cfg, Users: []transport.User{viewer, client, server}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	host := strings.TrimPrefix(emb.URL(), "tls://")
	t.Setenv(passwordEnv, "viewer-secret")
	for _, tc := range []struct {
		args []string
		want string // in stdout once it runs
	}{
		{[]string{"serve", "--addr", "127.0.0.1:0", "--nats", "tls://" + natsViewerUser + "@" + host, t.TempDir()}, "serving"},
		{[]string{"client", "--nats", "tls://" + natsClientUser + ":client-secret@" + host, "--clients", "0-3"}, "waiting for runs announced on tls://" + natsClientUser + ":xxxxx@"},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			var errb bytes.Buffer
			err := run(context.Background(), tc.args, io.Discard, &errb)
			if code := exitCode(err, &errb); code != 1 || !strings.Contains(errb.String(), "not signed by a CA this machine trusts: give the CA's certificate, --nats-ca FILE") {
				t.Errorf("without --nats-ca: exit code %d:\n%s", code, errb.String())
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out lockedBuffer
			done := make(chan error, 1)
			go func() { done <- run(ctx, append(tc.args, "--nats-ca", caFile), &out, &out) }()
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), tc.want); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("with --nats-ca: output %q lacks %q", out.String(), tc.want)
				}
				select {
				case err := <-done:
					t.Fatalf("with --nats-ca: %v\n%s", err, out.String())
				default:
				}
			}
			if emb.Clients() < 1 {
				t.Errorf("%d connections to the server", emb.Clients())
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("after an interrupt: %v", err)
			}
		})
	}
	// fotsim server: without --nats-ca the same refusal; with it, the
	// server connects, announces the run and, with no client process,
	// ends after --wait naming the clients that none joined for.
	srvArgs := []string{"server", "synthetic", "--nats", "tls://" + natsServerUser + ":server-secret@" + host, "--wait", "1s", "--out", t.TempDir()}
	var serr bytes.Buffer
	if code := exitCode(run(context.Background(), srvArgs, io.Discard, &serr), &serr); code != 1 || !strings.Contains(serr.String(), "not signed by a CA this machine trusts") {
		t.Errorf("server without --nats-ca: exit code %d:\n%s", code, serr.String())
	}
	serr.Reset()
	if code := exitCode(run(context.Background(), append(srvArgs, "--nats-ca", caFile), io.Discard, &serr), &serr); code != 1 || !strings.Contains(serr.String(), "no client host joined") {
		t.Errorf("server with --nats-ca: exit code %d, want 1 and no client host:\n%s", code, serr.String())
	}
	var errb bytes.Buffer
	args := []string{"client", "--nats", "tls://" + host, "--nats-ca", filepath.Join(t.TempDir(), "none.pem"), "--clients", "0"}
	if code := exitCode(run(context.Background(), args, io.Discard, &errb), &errb); code != 2 || !strings.Contains(errb.String(), "--nats-ca") {
		t.Errorf("a missing CA file: exit code %d:\n%s", code, errb.String())
	}
}

// fotsim server with a client host's credentials fails fast, naming the
// user and the refused subject.
func TestServerRefusedFailsFast(t *testing.T) {
	host := credsServer(t)
	var errb bytes.Buffer
	start := time.Now()
	err := run(context.Background(), []string{"server", "synthetic", "--nats", "nats://" + natsHostUserPrefix + "a@" + host, "--nats-password-file", writeSecret(t, natsHostUserPrefix+"a-secret"),
		"--wait", "1m", "--quiet", "--out", t.TempDir(), "--set", "methods=fedavg"}, io.Discard, &errb)
	code := exitCode(err, &errb)
	want := regexp.MustCompile(`does not let user "fotsim-client-a" (subscribe to "fotsim\.[^"]+\.hosts"|publish to "fotsim\.announce")`)
	if code != 1 || !want.MatchString(errb.String()) || strings.Contains(errb.String(), "-secret") {
		t.Errorf("exit code %d, want 1 and %q:\n%s", code, want, errb.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the server failed after %v", d)
	}
	t.Log(strings.TrimSpace(errb.String()))
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fotsim/fotsim/sim"
	"github.com/fotsim/fotsim/transport"
)

// A fotsim client process killed (SIGKILL) in the middle of a run, then
// started again with the same clients: the server, which has no deadline,
// waits for the killed clients' updates, takes the silent process for gone
// after transport.timeout (3 s at least), announces the run again, and
// the new process rejoins and trains the round sent again. The run
// completes with the records of fotsim run, byte for byte.
func TestRejoinAfterClientKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fotsim and runs four processes")
	}
	bin := buildFotsim(t)
	url := loopbackNATS(t)
	sets := []string{"methods=fedavg", "train.clients_per_round=4", "train.rounds_per_task=6", "eval.every=2", "transport.timeout=2s"}
	flags := []string{"--quiet", "--no-plots", "--no-report"}
	for _, s := range sets {
		flags = append(flags, "--set", s)
	}
	ref := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), append([]string{"run", "synthetic", "--out", ref}, flags...), &stdout, &stderr); err != nil {
		t.Fatalf("fotsim run: %v\n%s", err, stderr.String())
	}

	// The test watches the run's round messages, to kill the client as
	// a round reaches it.
	watch, err := transport.Dial(url, "test-watch")
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	var rounds atomic.Int32
	var subscribed atomic.Bool
	roundSeen := make(chan struct{}, 64)
	unsub, err := watch.SubscribeRaw(transport.AnnounceSubject, func(_ string, data []byte) {
		var a sim.Announcement
		if json.Unmarshal(data, &a) != nil || subscribed.Swap(true) {
			return
		}
		_, err := watch.SubscribeRaw(transport.SubjectsFor(a.Run).Round, func(string, []byte) {
			rounds.Add(1)
			select {
			case roundSeen <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Errorf("subscribe to the rounds: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unsub() }()
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}

	victimOut := &lockedBuffer{}
	victim := exec.Command(bin, "client", "--nats", url, "--clients", "0-1", "--workers", "1", "--name", "c0-1")
	victim.Stdout, victim.Stderr = victimOut, victimOut
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	victimDone := make(chan error, 1)
	go func() { victimDone <- victim.Wait() }()
	t.Cleanup(func() { _ = victim.Process.Kill() })
	startClient(t, bin, url, "2-3")

	got := t.TempDir()
	srv := exec.Command(bin, append([]string{"server", "synthetic", "--nats", url, "--wait", "2m", "--out", got}, flags...)...)
	srvOut, srvErr := &lockedBuffer{}, &lockedBuffer{}
	srv.Stdout, srv.Stderr = srvOut, srvErr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	t.Cleanup(func() { _ = srv.Process.Kill() })

	// Kill the client as the third round message arrives (the rounds
	// wait for its clients from then on, there is no deadline).
	for end := time.Now().Add(2 * time.Minute); rounds.Load() < 3; {
		select {
		case <-roundSeen:
		case err := <-srvDone:
			t.Fatalf("fotsim server ended before round 2: %v\nstderr:\n%s", err, srvErr.String())
		case <-time.After(time.Until(end)):
			t.Fatalf("no third round after 2 minutes; server stderr:\n%s", srvErr.String())
		}
	}
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-victimDone; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the killed client exited with %v", err)
	}
	if !strings.Contains(victimOut.String(), "running clients 0-1 of 0-3") {
		t.Errorf("the killed client had not joined:\n%s", victimOut.String())
	}
	for end := time.Now().Add(time.Minute); !strings.Contains(srvErr.String(), "has not been heard from"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the server has not noticed the killed client after a minute:\n%s", srvErr.String())
		}
	}
	again := startClient(t, bin, url, "0-1")
	select {
	case err := <-srvDone:
		if err != nil {
			t.Fatalf("fotsim server: %v\nstderr:\n%s\nnew client:\n%s", err, srvErr.String(), again.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("fotsim server has not ended 3 minutes after the new client started; stderr:\n%s\nnew client:\n%s", srvErr.String(), again.String())
	}
	for _, w := range []string{
		"client host c0-1 (clients 0-1) has not been heard from for 3s: gone",
		"client host c0-1 (clients 0-1) rejoined the started run, replacing c0-1 (clients 0-1)",
	} {
		if !strings.Contains(srvErr.String(), w) {
			t.Errorf("server stderr lacks %q:\n%s", w, srvErr.String())
		}
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
	for end := time.Now().Add(time.Minute); !strings.Contains(again.String(), ": done"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the new client has not finished the run:\n%s", again.String())
		}
	}
	if !strings.Contains(again.String(), "rejoined the started run: running clients 0-1 of 0-3 from the next round") {
		t.Errorf("new client output:\n%s", again.String())
	}
}

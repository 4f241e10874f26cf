package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// signalError is the cause of a context ended by a signal (SIGINT,
// SIGTERM): fotsim then exits with 128 + the signal's number, as a shell
// reports a process the signal killed (130, 143).
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "interrupted by " + signalName(e.sig) }

// Is makes a signalError a context.Canceled too.
func (e signalError) Is(target error) bool { return target == context.Canceled }

// exitCode is 128 + the signal's number (1 for a signal without one).
func (e signalError) exitCode() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// notifySignals is signal.NotifyContext with the signal as the context's
// cause (a signalError, see context.Cause). After the first signal the
// signals' default action is back: a second one ends the process at once.
func notifySignals(parent context.Context, sigs ...os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(signalError{s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(nil) }
}

// interrupted returns err, naming the signal when ctx was ended by one and
// err does not say so already, so that exitCode maps it to 130 or 143.
func interrupted(ctx context.Context, err error) error {
	var s signalError
	if err == nil || errors.As(err, &s) || !errors.As(context.Cause(ctx), &s) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, s)
}

package transport

import (
	"errors"
	"testing"
	"time"
)

// Users: names must be unique and non-empty, passwords non-empty; a user
// connects with its name and password in the URL, others do not.
func TestEmbeddedUsers(t *testing.T) {
	srv, err := RoleUser(RoleServer, "s", "sp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RoleUser("nobody", "v", "vp"); !errors.Is(err, ErrOptions) {
		t.Errorf("unknown role: %v", err)
	}
	for _, users := range [][]User{{{Password: "p"}}, {{Name: "a"}}, {srv, srv}} {
		if err := (EmbeddedOptions{Users: users}).Validate(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v, want ErrOptions", users, err)
		}
	}
	none := User{Name: "none", Password: "np"} // no subjects at all
	e, err := StartEmbeddedWith(EmbeddedOptions{Users: []User{srv, none}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	host := e.URL()[len("nats://"):]
	c, err := Dial("nats://s:sp@"+host, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan error, 1)
	if _, err := c.Subscribe(SubjectsFor("r").Round, func(_ *Message, err error) { got <- err }); err != nil {
		t.Fatal(err)
	}
	_ = c.Flush()
	select {
	case err := <-got:
		if err == nil {
			t.Error("a message on a subject the server role may not read")
		}
	case <-time.After(5 * time.Second):
		t.Error("no permissions violation for the server role subscribing to rounds")
	}
	for _, u := range []string{"nats://s:wrong@" + host, "nats://" + host} {
		if c, err := DialWith(u, "t", DialOptions{Timeout: time.Second}); err == nil {
			c.Close()
			t.Errorf("%s connected", u)
		}
	}
	if _, err := e.Connect("in-process"); err == nil {
		t.Error("an unauthenticated in-process connection was accepted")
	}
}

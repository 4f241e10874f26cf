package transport

import (
	"fmt"
	"slices"
)

// User is a NATS user of an embedded server (EmbeddedOptions.Users): a
// name and password (which connections give in the URL,
// nats://name:password@host:4222) and the subjects it may publish and
// subscribe to. NATS wildcards are allowed ("fotsim.*.round"). Unlike a
// nats-server configuration, an empty list allows nothing: a User may
// publish and subscribe to exactly what its lists name.
type User struct {
	Name, Password     string
	Publish, Subscribe []string
}

// Roles of RolePermissions.
const (
	RoleServer = "server" // fotsim server: runs the server side of runs
	RoleClient = "client" // fotsim client: client hosts training clients
	RoleViewer = "viewer" // fotsim serve --nats: reads announcements and metrics
)

// Roles returns the roles RolePermissions knows.
func Roles() []string { return []string{RoleServer, RoleClient, RoleViewer} }

// RolePermissions returns the subjects a process of role (RoleServer,
// RoleClient or RoleViewer) publishes and subscribes to, for every run
// (wildcards over the run token), or ok false for an unknown role:
//
//	server  publish   fotsim.*.round (rounds, stops), fotsim.*.join,
//	                  fotsim.*.metrics, fotsim.announce
//	        subscribe fotsim.*.update, fotsim.*.hosts
//	client  publish   fotsim.*.update, fotsim.*.hosts
//	        subscribe fotsim.*.round, fotsim.*.join, fotsim.announce
//	viewer  publish   nothing
//	        subscribe fotsim.*.metrics, fotsim.announce
//
// fotsim uses no request/reply, so no role needs _INBOX subjects, and the
// viewer (fotsim serve --nats) publishes nothing at all (NATS's pings are
// protocol, not publishes). A client with these permissions cannot publish
// rounds, stops, join answers or announcements, nor read other hosts'
// updates; it still reads every run's rounds (the global models). A
// viewer reads the runs' metrics and announcements (whose scenarios have
// their NATS passwords redacted), neither models nor updates.
func RolePermissions(role string) (publish, subscribe []string, ok bool) {
	run := SubjectPrefix + ".*."
	switch role {
	case RoleServer:
		return []string{run + "round", run + "join", run + "metrics", AnnounceSubject},
			[]string{run + "update", run + "hosts"}, true
	case RoleClient:
		return []string{run + "update", run + "hosts"},
			[]string{run + "round", run + "join", AnnounceSubject}, true
	case RoleViewer:
		return nil, []string{MetricsWildcard, AnnounceSubject}, true
	}
	return nil, nil, false
}

// RoleUser returns the User of role (see RolePermissions) with name and
// password.
func RoleUser(role, name, password string) (User, error) {
	pub, sub, ok := RolePermissions(role)
	if !ok {
		return User{}, fmt.Errorf("%w: unknown role %q, want one of %q", ErrOptions, role, Roles())
	}
	return User{Name: name, Password: password, Publish: pub, Subscribe: sub}, nil
}

// validateUsers reports empty or duplicate names and empty passwords.
func validateUsers(users []User) error {
	var names []string
	for i, u := range users {
		if u.Name == "" {
			return fmt.Errorf("%w: user %d has no name", ErrOptions, i)
		}
		if u.Password == "" {
			return fmt.Errorf("%w: user %q has no password", ErrOptions, u.Name)
		}
		if slices.Contains(names, u.Name) {
			return fmt.Errorf("%w: user %q given twice", ErrOptions, u.Name)
		}
		names = append(names, u.Name)
	}
	return nil
}

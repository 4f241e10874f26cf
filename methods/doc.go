// Package methods is the registry of fotsim's training methods: one file
// per method (fedavg.go, fot.go, ewc.go, fedsvd.go, ...) registers a Def
// holding everything about it:
//
//   - its Spec: name, summary, LoRA factors, whether it is a centralised
//     reference, what it cannot combine with;
//   - its options, a struct whose yaml tags are the option keys, decoded
//     strictly by the scenario loader (unknown keys and wrong kinds are
//     errors with file and line) and checked by Def.Validate;
//   - its client side, a client.Behaviour (what local training adds, what
//     the update carries), and its server side, a server.Rule (what the
//     round loop does to the aggregate, at task ends, in the broadcast).
//
// Nothing outside this package branches on a method's name: the scenario
// loader, the simulator and the CLI read the registry (Lookup, All).
//
// Adding a method is one new file and its test:
//
//	func init() {
//		methods.Register(methods.Def[MyOptions]{
//			Spec:      methods.Spec{Name: "mine", Summary: "..."},
//			Defaults:  MyOptions{Beta: 0.5},
//			NewClient: func(o MyOptions, e methods.Env) (client.Behaviour, error) { ... },
//			NewServer: func(o MyOptions, e methods.Env) (server.Rule, error) { ... },
//		})
//	}
package methods

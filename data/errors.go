package data

import "errors"

// Sentinel errors. Returned errors wrap one of them with %w and say which
// file, field or value is at fault.
var (
	// ErrNoMNIST: the MNIST idx files could not be found.
	ErrNoMNIST = errors.New("data: mnist not found")
	// ErrNoFashionMNIST: the Fashion-MNIST idx files could not be found.
	ErrNoFashionMNIST = errors.New("data: fashion-mnist not found")
	// ErrFormat: an idx file is malformed (magic, dimensions, length).
	ErrFormat = errors.New("data: malformed idx file")
	// ErrStream: a StreamConfig cannot be built on the given datasets.
	ErrStream = errors.New("data: invalid stream config")
	// ErrPartition: a partition cannot be drawn with the given arguments.
	ErrPartition = errors.New("data: invalid partition")
)

package main

import (
	"slices"
	"strings"
)

// queueKind describes one value of -kind.
type queueKind struct {
	open openFunc
	// shared: any number of producers and consumers share the queue.
	// Payloads then carry a producer id after the sequence number
	// (payload.PutProducer), and consume checks each producer's numbers
	// apart and stops when the producers are done (consumeShared).
	shared bool
	// slotted: the queue has fixed-size slots, so -max-message and
	// -locked apply.
	slotted bool
}

// queueKinds maps the values of -kind to their implementations.
var queueKinds = map[string]queueKind{
	"spsc": {open: openSPSC},
	"mpmc": {open: openMPMC, shared: true, slotted: true},
}

func kindNames() string {
	var names []string
	for k := range queueKinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

package main

// registeredMechanisms is the table of everything `go run .` compares, in
// output order.
//
// REGISTRATION POINT: to add a mechanism (a shmq queue flavour, a C peer,
// another library), write one file with a type implementing Mechanism and
// append it here. Nothing else needs to change: the harness, child
// re-exec, tables, JSON, charts and the smoke test pick it up from this list.
func registeredMechanisms() []Mechanism {
	return []Mechanism{
		floorRing,
		floorMemcpy,
		floorSpin,
		floorFutex,
		floorVyukov,
		floorClaim,
		pipeMechanism{},
		fifoMechanism{},
		unixSocketMechanism{name: "unix-stream", sockType: sockStream},
		unixSocketMechanism{name: "unix-dgram", sockType: sockDgram},
		unixSocketMechanism{name: "unix-seqpacket", sockType: sockSeqpacket},
		tcpLoopbackMechanism{},
		posixMQMechanism{},
		sysvMQMechanism{},
		eventfdShmMechanism{},
		shmipcMechanism{},
		goChannelMechanism{},
		shmqSPSCSpin,
		shmqSPSCDefault,
		shmqSPSCPark,
		shmqSPSCCPeer,
		shmqSPSCBatch,
		shmqMPMCDefault,
		shmqMPMCLocked,
		// Next: MPMC C peers, more than one producer or consumer.
	}
}

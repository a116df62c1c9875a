// Package shmnet runs stream protocols over shared memory: a Conn is a
// net.Conn whose two directions are SPSC queues (package spsc), and a
// Listener and Dialer connect processes of one host, so that code written
// for net.Conn (HTTP/2, gRPC, TLS, a custom framing) works unchanged while
// its bytes move through memory instead of the kernel.
//
// # Connections
//
// A Conn is a byte stream. Write splits its argument into messages of at
// most the queue's MaxMessage and waits while the ring is full; Read copies
// from the next messages straight into its buffer, keeping the unread part
// of a message in the ring for the next Read, and fills the buffer with as
// many waiting messages as fit. When the peer has closed its writing side
// (Close or CloseWrite) and everything it wrote has been read, Read returns
// io.EOF. Deadlines behave as net.Conn's: a deadline set while a call is
// blocked applies to that call, and a passed deadline fails calls with an
// error that matches os.ErrDeadlineExceeded and is a net.Error whose
// Timeout method reports true. Close unblocks calls in other goroutines,
// which return an error matching net.ErrClosed. Every method is safe for
// concurrent use: reads are serialized among themselves, as are writes.
//
// A peer process that dies makes a blocked Read (once the stream is
// drained) or Write (once the ring is full) fail with an error matching
// ErrPeerDead within about 100 ms; the queues' registry notices the death
// (see package ring). A Write to a peer that closed cleanly succeeds while
// the ring has room, like a write into a socket buffer, and fails with
// ErrPeerClosed (which matches syscall.EPIPE) once the ring stays full.
//
// # gRPC and other users of net.Conn
//
// A Listener is a net.Listener and Dialer.DialContext has the shape of
// grpc.WithContextDialer's argument, so a gRPC service moves to shared
// memory by changing how it listens and dials:
//
//	lis, err := shmnet.Listen("greeter")
//	...
//	go grpcServer.Serve(lis)
//
//	var d shmnet.Dialer
//	cc, err := grpc.NewClient("passthrough:///greeter",
//		grpc.WithContextDialer(d.DialContext),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// # Rendezvous
//
// A listener is known by a name. Listen binds the abstract Unix socket
// "@shmq/net/NAME" (Linux); Dial creates both queues of the new connection
// in sealed memfds, connects to that socket, checks the listener's
// credentials, and passes the two memfds with SCM_RIGHTS. The listener
// checks the dialer's credentials, maps and validates the queues, attaches
// its ends, and answers; then both sides close the socket. Nothing is ever
// named in the file system: a connection's memory is freed when the last
// process holding it closes it or dies, and a listener's name disappears
// with its socket, so neither a normal nor an abnormal end leaves files in
// /dev/shm, and a new Listen never finds a stale name. Abstract sockets
// belong to a network namespace: processes in different ones cannot
// rendezvous.
//
// By default both sides accept only peers running under the same effective
// uid (Dialer.Authorize, ListenConfig.Authorize widen that). A queue's
// memory is writable by both peers; everything read from it is validated,
// so a hostile peer can garble its own connection's bytes but not crash or
// hang this process beyond the deadlines it sets.
package shmnet

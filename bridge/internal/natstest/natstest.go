// Package natstest runs a NATS server with JetStream inside a test or
// benchmark process, on a loopback port and a store directory that survive
// a restart.
package natstest

import (
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is an in-process nats-server with JetStream (file store).
type Server struct {
	Opts *server.Options
	s    *server.Server
}

// Start runs a server on 127.0.0.1 and a free port, storing JetStream data
// in dir. opts, if non-nil, may set authentication or TLS before the start.
func Start(dir string, opts func(*server.Options)) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
		// Small limits suit a test machine.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	if opts != nil {
		opts(o)
	}
	srv := &Server{Opts: o}
	return srv, srv.start()
}

func (s *Server) start() error {
	ns, err := server.NewServer(s.Opts)
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("nats-server on port %d not ready", s.Opts.Port)
	}
	s.s = ns
	return nil
}

// URL is the client URL, nats://127.0.0.1:PORT.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Opts.Port) }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	if s.s != nil {
		s.s.Shutdown()
		s.s.WaitForShutdown()
		s.s = nil
	}
}

// Restart stops the server and starts it again on the same port and store
// directory; JetStream recovers its streams and consumers from the store.
func (s *Server) Restart(down time.Duration) error {
	s.Stop()
	time.Sleep(down)
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

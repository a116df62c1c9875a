package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/shmq/shmq/bench/grpcbench/helloworld"
	"github.com/shmq/shmq/shmnet"
	"github.com/shmq/shmq/spsc"
)

// serverEnv marks a re-executed binary (this command or its test binary)
// as the server process and carries "SHMQ_NAME UNIX_PATH SPIN": the shmq
// listener's name, the Unix socket's path, and the shmq wait policy's spin
// duration.
const serverEnv = "SHMQ_GRPCBENCH_SERVER"

// greeter is the hello-world service: it answers "Hello " + name.
type greeter struct {
	helloworld.UnimplementedGreeterServer
}

func (greeter) SayHello(_ context.Context, in *helloworld.HelloRequest) (*helloworld.HelloReply, error) {
	return &helloworld.HelloReply{Message: "Hello " + in.GetName()}, nil
}

// maybeServe runs the server and exits if this process is one; call it
// first thing in main and TestMain.
func maybeServe() {
	spec, ok := os.LookupEnv(serverEnv)
	if !ok {
		return
	}
	if err := serve(spec); err != nil {
		fmt.Fprintf(os.Stderr, "grpcbench server: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve serves the Greeter on a shmq listener and on a Unix socket, each
// with its own grpc.Server of default options, reports "ready" on stdout,
// and stops when stdin closes.
func serve(spec string) error {
	f := strings.Fields(spec)
	if len(f) != 3 {
		return fmt.Errorf("bad %s %q", serverEnv, spec)
	}
	name, path := f[0], f[1]
	spin, err := time.ParseDuration(f[2])
	if err != nil {
		return fmt.Errorf("bad %s %q: %w", serverEnv, spec, err)
	}
	lc := shmnet.ListenConfig{Wait: spsc.Wait{Spin: spin}}
	shm, err := lc.Listen(name)
	if err != nil {
		return err
	}
	uds, err := net.Listen("unix", path)
	if err != nil {
		shm.Close()
		return err
	}
	var servers []*grpc.Server
	for _, l := range []net.Listener{shm, uds} {
		s := grpc.NewServer()
		helloworld.RegisterGreeterServer(s, greeter{})
		servers = append(servers, s)
		go s.Serve(l)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, s := range servers {
		s.Stop()
	}
	return nil
}

// server is a running server process.
type server struct {
	shmName, unixPath string
	cmd               *exec.Cmd
	stdin             io.Closer
	dir               string
}

// startServer re-executes this binary as the server process and waits
// until it listens. args are the arguments the re-executed binary needs
// not to run anything else (a test binary's "-test.run=^$").
func startServer(spin time.Duration, args ...string) (*server, error) {
	dir, err := os.MkdirTemp("", "grpcbench")
	if err != nil {
		return nil, err
	}
	s := &server{shmName: fmt.Sprintf("grpcbench-%d", os.Getpid()), unixPath: filepath.Join(dir, "greeter.sock"), dir: dir}
	s.cmd = exec.Command(os.Args[0], args...)
	s.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %v", serverEnv, s.shmName, s.unixPath, spin))
	s.cmd.Stderr = os.Stderr
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.stdin = stdin
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		s.stop()
		return nil, fmt.Errorf("server process: %q, %v", line, err)
	}
	return s, nil
}

// stop ends the server process and removes its socket's directory.
func (s *server) stop() error {
	s.stdin.Close()
	err := s.cmd.Wait()
	os.RemoveAll(s.dir)
	return err
}

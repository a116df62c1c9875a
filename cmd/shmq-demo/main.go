// Command shmq-demo shows shmq queues at work between processes and doubles
// as a small tool for named queues.
//
// With no arguments it runs a self-checking demo: it creates an SPSC queue
// in /dev/shm, starts a consumer as a child process of itself, streams a few
// million checksummed messages to it and reports the throughput, then
// measures round-trip latency over a pair of queues with the child echoing,
// then runs producer and consumer processes on an MPMC queue and checks
// that every message arrives exactly once, then publishes to subscriber
// processes of a pub/sub queue and checks that each receives every
// message. The subcommands produce and consume connect terminals through a
// named queue of either kind, publish and subscribe through a pub/sub
// queue; inspect and rm examine and remove queues. Run shmq-demo -h for
// the usage.
//
// Reading the source: main.go dispatches to the commands, each in the file
// of its name (produce.go, consume.go, publish.go, subscribe.go,
// inspect.go, list.go, reap.go, rm.go, and demo.go for the demo run). The demo's phases are in demo_*.go,
// one per phase and queue kind, each with both ends, the parent's and its
// child processes'; they stand on phase.go and child.go. The payload
// formats and their checkers are in internal/payload. A file uses only
// files below it, down to cli.go, and TestFileDependencies keeps it so.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() { os.Exit(run(os.Args[1:])) }

// run executes one command line and returns the exit status.
func run(args []string) int {
	cmd, rest := "demo", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "demo", "run":
		err = runDemo(rest)
	case "produce":
		err = runProduce(rest)
	case "consume":
		err = runConsume(rest)
	case "publish":
		err = runPublish(rest)
	case "subscribe":
		err = runSubscribe(rest)
	case "inspect":
		err = runInspect(rest)
	case "rm":
		err = runRemove(rest)
	case "list":
		err = runList(rest)
	case "reap":
		err = runReap(rest)
	case "help":
		fmt.Print(usageText)
		return exitOK
	default:
		if peer := demoPeer(cmd); peer != nil {
			return peer(rest)
		}
		err = usagef("unknown command %q (try shmq-demo -h)", cmd)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(usageText)
		return exitOK
	}
	msg := oneLine(err.Error())
	if interrupted() {
		msg = "interrupted: " + msg
	}
	fmt.Fprintf(os.Stderr, "shmq-demo: %s: %s\n", cmd, msg)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case interrupted():
		return exitInterrupted
	}
	return exitFail
}

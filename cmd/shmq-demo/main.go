// Command shmq-demo shows shmq queues at work between processes and doubles
// as a small tool for named queues.
//
// With no arguments it runs a self-checking demo: it creates an SPSC queue
// in /dev/shm, starts a consumer as a child process of itself, streams a few
// million checksummed messages to it and reports the throughput, then
// measures round-trip latency over a pair of queues with the child echoing,
// then runs producer and consumer processes on an MPMC queue and checks
// that every message arrives exactly once. The subcommands produce and
// consume connect terminals through a named queue of either kind; inspect
// and rm examine and remove queues. Run shmq-demo -h for the usage.
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
	case childStream:
		return runChildStream(rest)
	case childEcho:
		return runChildEcho(rest)
	case childMPMCProducer:
		return runChildMPMCProducer(rest)
	case childMPMCConsumer:
		return runChildMPMCConsumer(rest)
	default:
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

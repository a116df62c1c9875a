package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// The command line's plumbing, shared by every command: exit statuses,
// usage errors, flag sets and the one-line forms of errors and rates.

// Exit statuses.
const (
	exitOK          = 0
	exitFail        = 1   // an error or a failed check
	exitUsage       = 2   // bad arguments
	exitInterrupted = 130 // SIGINT or SIGTERM
)

// usageError marks errors in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// newFlags returns a flag set that reports errors instead of printing the
// generated defaults, so that hidden test flags stay hidden.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args and refuses positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// isSet reports whether the command line set flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// rate returns n per second over d.
func rate(n uint64, d time.Duration) float64 { return float64(n) / max(d.Seconds(), 1e-9) }

// nameArg returns the single NAME argument of inspect, reap and rm.
func nameArg(cmd string, args []string) (string, error) {
	fs := newFlags(cmd)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return "", usagef("want exactly one queue name: shmq-demo %s NAME", cmd)
	}
	return fs.Arg(0), nil
}

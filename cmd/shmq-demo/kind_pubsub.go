package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/shmq/shmq/layout"
	"github.com/shmq/shmq/pubsub"
	"github.com/shmq/shmq/ring"
)

// Publish/subscribe queues for the publish, subscribe and inspect commands:
// opening one whoever starts first, removing its name once the last one is
// out, and the rows inspect prints.

// openPubSub opens the pub/sub queue named name, or creates it with the
// given capacity (0: the default) and policy. An existing queue keeps its
// policy; asking for lossy (lossySet) on a back-pressure queue, or the
// reverse, is an error.
func openPubSub(ctx context.Context, name string, capacity uint64, lossy, lossySet bool) (*pubsub.Queue, error) {
	q, err := pubsub.OpenOrCreate(ctx, ring.Shm(name), pubsub.Config{
		Capacity: capacity, Lossy: lossy,
		AcceptExisting: true, // the flags set up a queue this command creates; an existing one is used as it is
	})
	if err != nil {
		return nil, err
	}
	if lossySet && q.Lossy() != lossy {
		q.Close()
		return nil, fmt.Errorf("%w: queue %s exists with the %s policy", pubsub.ErrMismatch, name, policyName(q.Lossy()))
	}
	return q, nil
}

// policyName names a pub/sub queue's policy.
func policyName(lossy bool) string {
	if lossy {
		return "lossy"
	}
	return "back-pressure"
}

// removePubSubIfLast removes the name of pub/sub queue q if no live
// process is attached to it any more: the last one out removes it. A
// subscriber still reading keeps the name for those that have not opened
// the queue yet.
func removePubSubIfLast(q *pubsub.Queue, cmd, name string) {
	st, err := q.Stats()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: reading the registry of %s: %v\n", cmd, name, err)
		return
	}
	if attached(st.Publisher) {
		return
	}
	for _, s := range st.Subscribers {
		if attached(s.EntryInfo) {
			return
		}
	}
	if err := ring.Unlink(ring.Shm(name)); err != nil && !errors.Is(err, ring.ErrNotFound) {
		fmt.Fprintf(os.Stderr, "%s: removing %s: %v\n", cmd, name, err)
	}
}

// pubsubRows returns inspect's rows for the pub/sub queue in seg, as label
// and text, the subscribers' last: each one's position, the next sequence
// number it expects, and how far it lags, in bytes and messages.
func pubsubRows(v *ring.View, info *ring.SegmentInfo) ([][2]string, error) {
	st, err := pubsub.ReadStats(v, info.Entries)
	if err != nil {
		return nil, err
	}
	mask := st.Capacity - 1
	rows := [][2]string{
		{"policy", policyText(st.Lossy)},
		{"capacity", fmt.Sprintf("%d bytes", st.Capacity)},
		{"max message", fmt.Sprintf("%d bytes", st.MaxMessage)},
		{"tail", fmt.Sprintf("%d (ring index %d), next message %d", st.Tail, st.Tail&mask, st.NextSeq)},
	}
	if st.Lossy {
		rows = append(rows,
			[2]string{"intent", fmt.Sprintf("%d (the publisher may be writing up to here)", st.Intent)},
			[2]string{"oldest", fmt.Sprintf("%d (%d bytes behind the tail; lapped subscribers resume here)", st.Oldest, st.Tail-st.Oldest)})
	} else {
		rows = append(rows, [2]string{"limit", fmt.Sprintf("%d (the publisher may write up to here; history from %d)", st.Limit, st.Limit-st.Capacity)})
	}
	rows = append(rows, [2]string{"subscribers", fmt.Sprintf("%d in use of %d", len(st.Subscribers), v.Header().RegistryCount-1)})
	for _, s := range st.Subscribers {
		lag := fmt.Sprintf("lag %d bytes, %d messages", s.LagBytes, s.LagMessages)
		if s.LagBytes > st.Capacity {
			lag = fmt.Sprintf("lag %d bytes: overwritten, resumes on its next call", s.LagBytes)
		}
		rows = append(rows, [2]string{fmt.Sprintf("  [%d]", s.Index),
			fmt.Sprintf("pid %d %s: position %d, next message %d, %s, lost %d", s.PID, liveness(s.EntryInfo), s.Position, s.NextSeq, lag, s.Lost)})
	}
	return rows, nil
}

func policyText(lossy bool) string {
	if lossy {
		return "lossy (the publisher never waits; overwritten subscribers are told how many messages they lost)"
	}
	return "back-pressure (the publisher waits for the slowest live subscriber)"
}

// pubsubFlags are the flags publish and subscribe share.
type pubsubFlags struct {
	queue    string
	count    uint64
	capacity uint64
	lossy    bool
	lossySet bool // -lossy was given (set by check)
	keep     bool
	timeout  time.Duration
}

func (pf *pubsubFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.queue, "queue", "", "")
	fs.Uint64Var(&pf.count, "count", 0, "")
	fs.Uint64Var(&pf.capacity, "capacity", 0, "")
	fs.BoolVar(&pf.lossy, "lossy", false, "")
	fs.BoolVar(&pf.keep, "keep", false, "")
	fs.DurationVar(&pf.timeout, "timeout", 0, "")
}

// check validates the shared flags once fs is parsed.
func (pf *pubsubFlags) check(fs *flag.FlagSet) error {
	pf.lossySet = isSet(fs, "lossy")
	switch {
	case pf.queue == "":
		return usagef("-queue NAME is required")
	case pf.count == 0:
		return usagef("-count N is required and must be positive")
	case pf.capacity != 0 && (pf.capacity < layout.MinPubSubCapacity || pf.capacity&(pf.capacity-1) != 0):
		return usagef("-capacity must be a power of two of at least %d", layout.MinPubSubCapacity)
	}
	return nil
}

// open opens or creates the queue.
func (pf *pubsubFlags) open(ctx context.Context) (*pubsub.Queue, error) {
	return openPubSub(ctx, pf.queue, pf.capacity, pf.lossy, pf.lossySet)
}

// context returns the command's context: ended by a signal or -timeout.
func (pf *pubsubFlags) context() (context.Context, context.CancelFunc) {
	ctx, stop := signalContext()
	if pf.timeout <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, pf.timeout)
	return ctx, func() { cancel(); stop() }
}

package mpmc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/shmq/shmq/mpmc"
	"github.com/shmq/shmq/notify"
	"github.com/shmq/shmq/ring"
)

// A work queue: any number of producer and consumer processes share it;
// each message goes to one consumer.
func Example() {
	ctx := context.Background()
	loc := ring.Shm(fmt.Sprintf("example-work-%d", os.Getpid()))
	defer ring.Unlink(loc)
	q, err := mpmc.OpenOrCreate(ctx, loc, mpmc.Config{Slots: 64, MaxMessage: 100})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	p, _ := q.Producer() // each producer and consumer takes a registry entry
	w1, _ := q.Consumer()
	w2, _ := q.Consumer()
	for i := range 4 {
		p.Send(ctx, []byte(fmt.Sprintf("job %d", i)))
	}
	buf := make([]byte, q.MaxMessage())
	for _, w := range []*mpmc.Consumer{w1, w2, w1, w2} {
		n, _ := w.Recv(ctx, buf)
		fmt.Printf("consumer %d: %s\n", w.Index(), buf[:n])
	}
	// Output:
	// consumer 1: job 0
	// consumer 2: job 1
	// consumer 1: job 2
	// consumer 2: job 3
}

// A worker that dies holding a job does not lose it: the producer that
// next reaches the job's slot requeues it, and another worker receives it
// again. Here the worker that dies is a child process (this test binary,
// see TestMain) that peeks the first job and is killed.
func Example_crashRedelivery() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, _ := mpmc.Create(ring.Memfd("work"), mpmc.Config{Slots: 2, SlotSize: 64})
	defer q.Close()
	p, _ := q.Producer()
	p.Send(ctx, []byte("job 1"))

	worker := exec.Command(os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), "MPMC_HELPER=hang-peek")
	worker.ExtraFiles = []*os.File{q.Segment().File()}
	out, _ := worker.StdoutPipe()
	worker.Start()
	bufio.NewReader(out).ReadString('\n') // it has taken job 1
	worker.Process.Kill()
	worker.Wait()

	c, _ := q.Consumer()
	buf := make([]byte, q.MaxMessage())
	p.Send(ctx, []byte("job 2"))
	n, _ := c.Recv(ctx, buf)
	fmt.Printf("%s\n", buf[:n])
	p.Send(ctx, []byte("job 3")) // reaches job 1's slot: requeues it first
	for range 2 {
		n, _ := c.Recv(ctx, buf)
		fmt.Printf("%s\n", buf[:n])
	}
	fmt.Println("redelivered:", c.Redelivered())
	// Output:
	// job 2
	// job 1
	// job 3
	// redelivered: 1
}

// Consumers may opt in to an end of stream: io.EOF once the producers have
// detached, none has attached for the grace, and the queue is empty.
func ExampleConsumer_EndOfStream() {
	ctx := context.Background()
	q, _ := mpmc.Create(ring.Memfd("eos"), mpmc.Config{Slots: 8, SlotSize: 64})
	defer q.Close()
	c, _ := q.Consumer()
	c.EndOfStream(50 * time.Millisecond)
	p, _ := q.Producer()
	p.Send(ctx, []byte("last words"))
	p.Close()
	buf := make([]byte, q.MaxMessage())
	for {
		n, err := c.Recv(ctx, buf)
		if err == io.EOF {
			fmt.Println("end of stream")
			return
		}
		fmt.Printf("%s\n", buf[:n])
	}
	// Output:
	// last words
	// end of stream
}

// Blocking zero copy: PeekWait waits for a message and hands out the slot
// itself; a crash before Release redelivers it instead of losing it.
func ExampleConsumer_PeekWait() {
	ctx := context.Background()
	q, _ := mpmc.Create(ring.Memfd("peek"), mpmc.Config{Slots: 8, SlotSize: 64})
	defer q.Close()
	p, _ := q.Producer()
	c, _ := q.Consumer()
	go p.Send(ctx, []byte("process me"))
	m, err := c.PeekWait(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	q.Guard(func() error { fmt.Printf("%s\n", m); return nil })
	c.Release() // only now is the job done
	// Output: process me
}

// Many goroutines, one registry entry: a SharedProducer is safe for
// concurrent use, and each goroutine's messages stay in its order.
func ExampleSharedProducer() {
	ctx := context.Background()
	q, _ := mpmc.Create(ring.Memfd("front"), mpmc.Config{Slots: 1024, SlotSize: 64})
	defer q.Close()
	sp, _ := q.SharedProducer()
	defer sp.Close()
	done := make(chan struct{})
	for g := range 100 { // request handlers
		go func() {
			sp.Send(ctx, []byte(fmt.Sprint("request ", g)))
			done <- struct{}{}
		}()
	}
	for range 100 {
		<-done
	}
	st, _ := q.Stats()
	fmt.Println(st.Used, "messages from 100 goroutines,", len(st.Entries), "registry entry")
	// Output: 100 messages from 100 goroutines, 1 registry entry
}

// One goroutine waits on many queues at once (a notify.Group parks on all
// their wake words with futex_waitv), with no goroutine per queue.
func Example_waitGroup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var results []*mpmc.Consumer
	g := notify.NewGroup(notify.GroupConfig{})
	defer g.Close()
	var producers []*mpmc.Producer
	for i := range 3 { // a result queue per worker
		q, _ := mpmc.Create(ring.Memfd(fmt.Sprint("results-", i)), mpmc.Config{Slots: 8, SlotSize: 64})
		defer q.Close()
		c, _ := q.Consumer()
		p, _ := q.Producer()
		results = append(results, c)
		producers = append(producers, p)
		g.Add(c) // key i
	}
	go producers[2].Send(ctx, []byte("result from worker 2"))
	k, err := g.Wait(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	buf := make([]byte, 64)
	n, _ := results[k].TryRecv(buf)
	fmt.Printf("queue %d: %s\n", k, buf[:n])
	// Output: queue 2: result from worker 2
}

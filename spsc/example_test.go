package spsc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/shmq/shmq/ring"
	"github.com/shmq/shmq/spsc"
)

// Two processes meet at a name in /dev/shm: whichever starts first creates
// the queue. Here both handles are in one process.
func Example() {
	ctx := context.Background()
	loc := ring.Shm(fmt.Sprintf("example-%d", os.Getpid()))
	defer ring.Unlink(loc)

	// Process A: create the queue (or open it if B got there first).
	qa, err := spsc.OpenOrCreate(ctx, loc, spsc.Config{Capacity: 1 << 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer qa.Close()
	p, err := qa.Producer()
	if err != nil {
		fmt.Println(err)
		return
	}

	// Process B: open it and consume.
	qb, err := spsc.Open(ctx, loc, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer qb.Close()
	c, err := qb.Consumer()
	if err != nil {
		fmt.Println(err)
		return
	}

	p.Send(ctx, []byte("hello"))
	buf := make([]byte, qb.MaxMessage())
	n, err := c.Recv(ctx, buf)
	fmt.Printf("%s %v\n", buf[:n], err)
	// Output: hello <nil>
}

// Zero copy: the producer writes into the ring in place and publishes a
// batch with one store; the consumer reads in place and frees with one
// store. On a segment that another process could truncate (a shm name or a
// file), touch the slices inside Guard.
func Example_zeroCopy() {
	q, err := spsc.Create(ring.Memfd("zero-copy"), spsc.Config{Capacity: 4096})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	p, _ := q.Producer()
	c, _ := q.Consumer()

	for _, word := range []string{"zero", "copy"} {
		b, err := p.Reserve(len(word))
		if err != nil {
			fmt.Println(err)
			return
		}
		q.Guard(func() error { copy(b, word); return nil })
	}
	p.Commit() // both messages, one store

	for {
		m, err := c.Peek()
		if err == spsc.ErrEmpty {
			break
		}
		q.Guard(func() error { fmt.Printf("%s\n", m); return nil })
	}
	c.Release()
	// Output:
	// zero
	// copy
}

// Blocking calls take a context; the error names the operation and wraps
// the context's.
func Example_context() {
	q, _ := spsc.Create(ring.Memfd("context"), spsc.Config{Capacity: 4096})
	defer q.Close()
	c, _ := q.Consumer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := c.Recv(ctx, make([]byte, 64))
	fmt.Println(err)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// spsc: Recv: context deadline exceeded
	// true
}

// When the producer closes, the consumer reads what is left and then gets
// io.EOF, like a reader at the end of a file.
func Example_endOfStream() {
	ctx := context.Background()
	q, _ := spsc.Create(ring.Memfd("eof"), spsc.Config{Capacity: 4096})
	defer q.Close()
	p, _ := q.Producer()
	c, _ := q.Consumer()
	for i := range 3 {
		p.Send(ctx, []byte{byte('a' + i)})
	}
	p.Close()

	buf := make([]byte, 64)
	for {
		n, err := c.Recv(ctx, buf)
		if err == io.EOF {
			fmt.Println("end of stream")
			break
		}
		fmt.Printf("%s\n", buf[:n])
	}
	// Output:
	// a
	// b
	// c
	// end of stream
}

// Closing a queue (or the handle) from another goroutine unblocks a call
// waiting in it, with an error that matches net.ErrClosed.
func Example_closeUnblocks() {
	q, _ := spsc.Create(ring.Memfd("close"), spsc.Config{Capacity: 4096})
	c, _ := q.Consumer()
	done := make(chan error)
	go func() {
		_, err := c.Recv(context.Background(), make([]byte, 64))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	q.Close()
	err := <-done
	fmt.Println(err, errors.Is(err, spsc.ErrClosed))
	// Output: spsc: Recv: shmq: closed true
}

// A memfd segment has no name: hand its descriptor to a child process,
// which opens it with ring.FD. The descriptor never holds a lock, so if the
// parent dies the child sees it dead. Here the child is this test binary
// (see TestMain); in a service it is a worker program.
func Example_memfdChild() {
	ctx := context.Background()
	q, err := spsc.Create(ring.Memfd("jobs"), spsc.Config{Capacity: 1 << 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	p, _ := q.Producer()

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "SHMQ_SPSC_HELPER=example-child", "SHMQ_QUEUE=fd:3")
	child.ExtraFiles = []*os.File{q.Segment().File()} // the child's descriptor 3
	child.Stdout = os.Stdout
	if err := child.Start(); err != nil {
		fmt.Println(err)
		return
	}
	for _, job := range []string{"resize", "encode", "upload"} {
		p.Send(ctx, []byte(job))
	}
	p.Close() // the child sees io.EOF after the last job
	child.Wait()
	// Output:
	// child got resize
	// child got encode
	// child got upload
	// child done: EOF
}

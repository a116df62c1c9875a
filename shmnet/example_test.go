package shmnet_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/shmq/shmq/shmnet"
)

// A server that echoes one connection, and a client, in one process here;
// usually they are two.
func Example() {
	name := fmt.Sprintf("example-%d", os.Getpid())
	l, err := shmnet.Listen(name)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c) // echo until the client closes its writing side
		c.Close()
	}()

	c, err := shmnet.Dial(context.Background(), name)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello over shared memory"))
	c.CloseWrite()
	reply, err := io.ReadAll(c)
	fmt.Printf("%s %v\n", reply, err)
	// Output: hello over shared memory <nil>
}

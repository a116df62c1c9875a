package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysvMQMechanism uses one System V message queue; the message type tells
// the directions apart (1: to the child, 2: to the parent).
type sysvMQMechanism struct{}

const (
	sysvTypeToChild  = 1
	sysvTypeToParent = 2
)

func (sysvMQMechanism) Name() string { return "sysv-mq" }

func (sysvMQMechanism) Check(size int) error {
	maxMsg, err := readProcInt("/proc/sys/kernel/msgmax")
	if err != nil {
		return err
	}
	if size > maxMsg {
		return fmt.Errorf("message of %d B exceeds kernel.msgmax=%d", size, maxMsg)
	}
	maxQueue, err := readProcInt("/proc/sys/kernel/msgmnb")
	if err != nil {
		return err
	}
	if size > maxQueue {
		return fmt.Errorf("message of %d B exceeds kernel.msgmnb=%d", size, maxQueue)
	}
	return nil
}

func (sysvMQMechanism) Setup(size int) (*Link, error) {
	id, _, errno := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, unix.IPC_CREAT|0o600, 0)
	if errno != 0 {
		return nil, fmt.Errorf("msgget: %w", errno)
	}
	return &Link{
		ChildArg:   strconv.Itoa(int(id)),
		OpenParent: func() (Conn, error) { return newSysvConn(int(id), size, sysvTypeToChild, sysvTypeToParent), nil },
		Cleanup: func() {
			unix.Syscall(unix.SYS_MSGCTL, id, unix.IPC_RMID, 0)
		},
	}, nil
}

func (sysvMQMechanism) Attach(arg string, _ []*os.File, size int) (Conn, error) {
	id, err := strconv.Atoi(arg)
	if err != nil {
		return nil, fmt.Errorf("bad sysv queue id %q: %w", arg, err)
	}
	return newSysvConn(id, size, sysvTypeToParent, sysvTypeToChild), nil
}

// sysvConn keeps one buffer laid out as struct msgbuf {long mtype; char mtext[]}.
type sysvConn struct {
	id               int
	sendType, recvTy int64
	sendBuf, recvBuf []byte
}

func newSysvConn(id, size int, sendType, recvType int64) *sysvConn {
	c := &sysvConn{id: id, sendType: sendType, recvTy: recvType,
		sendBuf: make([]byte, 8+size), recvBuf: make([]byte, 8+size)}
	binary.NativeEndian.PutUint64(c.sendBuf, uint64(sendType))
	return c
}

func (c *sysvConn) Send(msg []byte) error {
	copy(c.sendBuf[8:], msg)
	for {
		_, _, errno := unix.Syscall6(unix.SYS_MSGSND, uintptr(c.id),
			uintptr(unsafe.Pointer(&c.sendBuf[0])), uintptr(len(msg)), 0, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR: // msgsnd is never restarted after a signal
			continue
		default:
			return fmt.Errorf("msgsnd: %w", errno)
		}
	}
}

func (c *sysvConn) Recv(buf []byte) error {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_MSGRCV, uintptr(c.id),
			uintptr(unsafe.Pointer(&c.recvBuf[0])), uintptr(len(buf)), uintptr(c.recvTy), 0, 0)
		switch errno {
		case 0:
			if int(n) != len(buf) {
				return fmt.Errorf("sysv message of %d bytes, want %d", n, len(buf))
			}
			copy(buf, c.recvBuf[8:])
			return nil
		case unix.EINTR: // msgrcv is never restarted after a signal
			continue
		default:
			return fmt.Errorf("msgrcv: %w", errno)
		}
	}
}

// Close leaves the queue to Link.Cleanup, which removes it once.
func (c *sysvConn) Close() error { return nil }

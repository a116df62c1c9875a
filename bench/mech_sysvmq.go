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
	remove := func() { unix.Syscall(unix.SYS_MSGCTL, id, unix.IPC_RMID, 0) }
	ds, err := msgStat(int(id))
	if err != nil {
		remove()
		return nil, err
	}
	return &Link{
		ChildArg:   strconv.Itoa(int(id)),
		OpenParent: func() (Conn, error) { return newSysvConn(int(id), size, sysvTypeToChild, sysvTypeToParent), nil },
		Cleanup:    remove,
		Config: []Setting{
			{Name: "objects", Value: "one msgget(2) queue for both directions, the message type naming the direction",
				Why: "how a System V queue is shared: one id, receivers select by type"},
			{Name: "msg_qbytes", Value: sizeSetting(int(ds.Qbytes)) + " (kernel.msgmnb)", Why: whyKernelDefault},
			{Name: "I/O", Value: "blocking msgsnd(2)/msgrcv(2), raw system calls", Why: "the kernel path without libc or cgo"},
		},
		GOMAXPROCSWhy: whyDefaultProcs,
		CheckPath: func(r pathRun) (string, error) {
			var c counterChecks
			parent, child := r.sides()[0], r.sides()[1]
			c.equal(parent, "sends", int64(r.ToChild))
			c.equal(child, "receives", int64(r.ToChild))
			c.equal(child, "sends", int64(r.ToParent))
			c.equal(parent, "receives", int64(r.ToParent))
			// The kernel's view: the queue is empty, and the last send and
			// receive were made by the two peers (the child is alive until
			// the harness releases it).
			ds, err := msgStat(int(id))
			if err != nil {
				c.failf("%v", err)
				return "", c.err()
			}
			if ds.Qnum != 0 {
				c.failf("%d messages left in the queue", ds.Qnum)
			}
			parentPID, childPID := os.Getpid(), int(child.pc["pid"])
			sender, receiver := processOf(int(ds.Lspid), parentPID, childPID), processOf(int(ds.Lrpid), parentPID, childPID)
			if sender == 0 || receiver == 0 || sender == receiver {
				c.failf("last msgsnd by task %d and msgrcv by task %d, want the parent %d and the child %d",
					ds.Lspid, ds.Lrpid, parentPID, childPID)
			}
			return fmt.Sprintf("blocking, %s queue drained", sizeSetting(int(ds.Qbytes))), c.err()
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

// processOf returns which of pids task belongs to, or 0. The kernel
// records the receiver as a thread id (task_pid), the sender as a process
// id, and a Go program's calls run on any of its threads.
func processOf(task int, pids ...int) int {
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, task)); err == nil && task > 0 {
			return pid
		}
	}
	return 0
}

// msqidDS mirrors the kernel's struct msqid64_ds on 64-bit Linux.
type msqidDS struct {
	Perm                [48]byte
	Stime, Rtime, Ctime int64
	Cbytes, Qnum        uint64
	Qbytes              uint64
	Lspid, Lrpid        int32
	_                   [2]uint64
}

// msgStat is msgctl(IPC_STAT).
func msgStat(id int) (msqidDS, error) {
	var ds msqidDS
	_, _, errno := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_STAT, uintptr(unsafe.Pointer(&ds)))
	if errno != 0 {
		return ds, fmt.Errorf("msgctl IPC_STAT: %w", errno)
	}
	return ds, nil
}

// sysvConn keeps one buffer laid out as struct msgbuf {long mtype; char
// mtext[]}, and counts its calls for the path check (the counters belong
// to the goroutine driving the Conn).
type sysvConn struct {
	id               int
	sendType, recvTy int64
	sendBuf, recvBuf []byte
	sends, receives  int64
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
			c.sends++
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
			c.receives++
			return nil
		case unix.EINTR: // msgrcv is never restarted after a signal
			continue
		default:
			return fmt.Errorf("msgrcv: %w", errno)
		}
	}
}

// PathCounters reports the messages moved and this process's pid, which
// the check matches against the kernel's last sender and receiver.
func (c *sysvConn) PathCounters() pathCounters {
	return pathCounters{"sends": c.sends, "receives": c.receives, "pid": int64(os.Getpid())}
}

// Close leaves the queue to Link.Cleanup, which removes it once.
func (c *sysvConn) Close() error { return nil }

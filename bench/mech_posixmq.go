package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// posixMQMechanism uses two POSIX message queues (one per direction) through
// the raw mq_* syscalls, so no cgo or librt is needed. The child opens them
// by name: mq descriptors do not survive exec.
type posixMQMechanism struct{}

// mqAttr mirrors the kernel's struct mq_attr on 64-bit Linux.
type mqAttr struct {
	Flags, MaxMsg, MsgSize, CurMsgs int64
	_                               [4]int64
}

func (posixMQMechanism) Name() string { return "posix-mq" }

func (posixMQMechanism) Check(size int) error {
	limit, err := readProcInt("/proc/sys/fs/mqueue/msgsize_max")
	if err != nil {
		return err
	}
	if size > limit {
		return fmt.Errorf("message of %d B exceeds fs.mqueue.msgsize_max=%d", size, limit)
	}
	return nil
}

func (posixMQMechanism) Setup(size int) (*Link, error) {
	depth, err := readProcInt("/proc/sys/fs/mqueue/msg_max")
	if err != nil {
		return nil, err
	}
	msgMax := depth
	depth = min(depth, posixMQDepth)
	base := fmt.Sprintf("shmq-bench-%d-%d", os.Getpid(), nextObjectID())
	toChild, toParent := base+"-to-child", base+"-to-parent"
	w, err := mqOpen(toChild, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, &mqAttr{MaxMsg: int64(depth), MsgSize: int64(size)})
	if err != nil {
		return nil, err
	}
	r, err := mqOpen(toParent, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL, &mqAttr{MaxMsg: int64(depth), MsgSize: int64(size)})
	if err != nil {
		unix.Close(w)
		mqUnlink(toChild)
		return nil, err
	}
	return &Link{
		ChildArg:   toChild + "\n" + toParent,
		OpenParent: func() (Conn, error) { return &mqConn{rd: r, wd: w}, nil },
		Cleanup:    func() { mqUnlink(toChild); mqUnlink(toParent) },
		Config: []Setting{
			{Name: "objects", Value: "two queues (one per direction), mq_open(3) by name in both processes",
				Why: "mq descriptors do not survive exec, so the child opens the names as an unrelated process would"},
			{Name: "mq_maxmsg", Value: fmt.Sprintf("%d (fs.mqueue.msg_max=%d)", depth, msgMax),
				Why: fmt.Sprintf("as deep as the queue may be made without privilege, at most %d; the kernel default limit is 10", posixMQDepth)},
			{Name: "mq_msgsize", Value: sizeSetting(size), Why: "exactly one message: a receive buffer must hold mq_msgsize bytes"},
			{Name: "I/O", Value: "blocking mq_timedsend(2)/mq_timedreceive(2) with no timeout, raw system calls", Why: "the kernel path without libc or cgo"},
		},
		GOMAXPROCSWhy: whyDefaultProcs,
		CheckPath: func(r pathRun) (string, error) {
			var c counterChecks
			parent, child := r.sides()[0], r.sides()[1]
			c.equal(parent, "sends", int64(r.ToChild))
			c.equal(child, "receives", int64(r.ToChild))
			c.equal(child, "sends", int64(r.ToParent))
			c.equal(parent, "receives", int64(r.ToParent))
			for _, s := range r.sides() {
				for _, q := range []string{"rd", "wd"} {
					c.equal(s, q+"_msgsize", int64(size))
					c.equal(s, q+"_maxmsg", int64(depth))
					c.equal(s, q+"_nonblocking", 0)
				}
			}
			c.equal(child, "rd_curmsgs", 0) // everything sent was taken
			return fmt.Sprintf("blocking, %d-deep queues drained", depth), c.err()
		},
	}, nil
}

// posixMQDepth bounds the depth of a queue, as goChanDepth does a channel's.
const posixMQDepth = 64

func (posixMQMechanism) Attach(arg string, _ []*os.File, size int) (Conn, error) {
	toChild, toParent, ok := strings.Cut(arg, "\n")
	if !ok {
		return nil, fmt.Errorf("bad mq arg %q", arg)
	}
	r, err := mqOpen(toChild, unix.O_RDONLY, nil)
	if err != nil {
		return nil, err
	}
	w, err := mqOpen(toParent, unix.O_WRONLY, nil)
	if err != nil {
		unix.Close(r)
		return nil, err
	}
	return &mqConn{rd: r, wd: w}, nil
}

// mqConn counts its calls for the path check; the counters belong to the
// goroutine driving the Conn.
type mqConn struct {
	rd, wd          int
	sends, receives int64
}

// PathCounters reports the messages moved and both queues' attributes as
// the kernel holds them (mq_getsetattr).
func (c *mqConn) PathCounters() pathCounters {
	pc := pathCounters{"sends": c.sends, "receives": c.receives}
	for q, fd := range map[string]int{"rd": c.rd, "wd": c.wd} {
		var a mqAttr
		_, _, errno := unix.Syscall(unix.SYS_MQ_GETSETATTR, uintptr(fd), 0, uintptr(unsafe.Pointer(&a)))
		if errno != 0 {
			a = mqAttr{Flags: unix.O_NONBLOCK, MaxMsg: -1, MsgSize: -1, CurMsgs: -1}
		}
		pc[q+"_msgsize"], pc[q+"_maxmsg"], pc[q+"_curmsgs"] = a.MsgSize, a.MaxMsg, a.CurMsgs
		pc[q+"_nonblocking"] = int64(boolInt(a.Flags&unix.O_NONBLOCK != 0))
	}
	return pc
}

func (c *mqConn) Send(msg []byte) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(c.wd),
			uintptr(unsafe.Pointer(unsafe.SliceData(msg))), uintptr(len(msg)), 0, 0, 0)
		switch errno {
		case 0:
			c.sends++
			return nil
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("mq_timedsend: %w", errno)
		}
	}
}

func (c *mqConn) Recv(buf []byte) error {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(c.rd),
			uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)), 0, 0, 0)
		switch errno {
		case 0:
			if int(n) != len(buf) {
				return fmt.Errorf("mq message of %d bytes, want %d", n, len(buf))
			}
			c.receives++
			return nil
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("mq_timedreceive: %w", errno)
		}
	}
}

func (c *mqConn) Close() error { return errors.Join(unix.Close(c.rd), unix.Close(c.wd)) }

// mqOpen is mq_open(3) without libc: the kernel takes the name without the
// leading slash.
func mqOpen(name string, flags int, attr *mqAttr) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, fmt.Errorf("mq name %q: %w", name, err)
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)),
		uintptr(flags|unix.O_CLOEXEC), 0o600, uintptr(unsafe.Pointer(attr)), 0, 0)
	if errno != 0 {
		return -1, fmt.Errorf("mq_open %s: %w", name, errno)
	}
	return int(fd), nil
}

func mqUnlink(name string) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return
	}
	unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
}

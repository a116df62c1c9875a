//go:build !linux

package ring

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/shmq/shmq/internal/unix"
)

// Without /dev/shm, shm names are files in a directory of the temporary
// file system; the segment format and protocols are the same.
var shmDir = filepath.Join(os.TempDir(), "shmq")

// ofdLocks: classic record locks, owned by the process.
const ofdLocks = false

func memfdCreate(string) (int, error) { return -1, ErrUnsupported }

func sealSize(interface{ Fd() uintptr }) error { return nil }

func allocate(fd int, size int64) error { return unix.Ftruncate(fd, size) }

func reopenPath(fd int) string { return "/dev/fd/" + strconv.Itoa(fd) }

func openTmp(string, uint32) (int, error) { return -1, unix.EOPNOTSUPP }

func linkTmp(int, string) error { return unix.EOPNOTSUPP }

func shrinkable(interface{ Fd() uintptr }) bool { return true }

// processRuns reports whether a process with this pid exists: a hint for
// lockEntry's patience, never for liveness.
func processRuns(pid uint32) bool {
	if pid == 0 || pid > 1<<30 {
		return false
	}
	err := unix.Kill(int(pid), 0)
	return err == nil || err == unix.EPERM
}

// renameNoReplace renames from to to, failing with EEXIST if to exists:
// link and unlink, where renameat2 is missing.
func renameNoReplace(from, to string) error {
	if err := unix.Link(from, to); err != nil {
		return err
	}
	return unix.Unlink(from)
}

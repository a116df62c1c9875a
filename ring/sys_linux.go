package ring

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// shmDir is where POSIX shared memory names live on Linux: glibc's
// shm_open is open(2) on this tmpfs.
const shmDir = "/dev/shm"

// ofdLocks: byte-range locks belong to open file descriptions (F_OFD_SETLK).
const ofdLocks = true

func memfdCreate(label string) (int, error) {
	return unix.MemfdCreate("shmq:"+label, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
}

// sealSize forbids shrinking and growing a memfd, so no holder of its
// descriptor can truncate the segment under a peer's mapping.
func sealSize(f interface{ Fd() uintptr }) error {
	_, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
	return err
}

func allocate(fd int, size int64) error {
	err := unix.Fallocate(fd, 0, 0, size)
	if err == unix.EOPNOTSUPP {
		return unix.Ftruncate(fd, size)
	}
	return err
}

func reopenPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// openTmp creates an unnamed regular file in dir (O_TMPFILE), which
// linkTmp later gives a name.
func openTmp(dir string, mode uint32) (int, error) {
	return unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, mode)
}

// linkTmp names an O_TMPFILE file; it fails with EEXIST if path exists.
func linkTmp(fd int, path string) error {
	return unix.Linkat(unix.AT_FDCWD, reopenPath(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
}

// shrinkable reports whether f lacks the F_SEAL_SHRINK seal.
func shrinkable(f interface{ Fd() uintptr }) bool {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	return err != nil || seals&unix.F_SEAL_SHRINK == 0
}

// processRuns reports whether a process with this pid exists (in this pid
// namespace): a hint for lockEntry's patience, never for liveness.
func processRuns(pid uint32) bool {
	if pid == 0 || pid > 1<<22 {
		return false
	}
	err := unix.Kill(int(pid), 0)
	return err == nil || err == unix.EPERM
}

// renameNoReplace renames from to to, failing with EEXIST if to exists.
func renameNoReplace(from, to string) error {
	return unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
}

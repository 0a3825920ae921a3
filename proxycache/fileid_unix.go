//go:build unix

package proxycache

import (
	"io/fs"
	"os"
	"syscall"
)

// fileID returns the device and inode numbers of a file.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // types differ by platform
	}
	return 0, 0
}

// openFile opens a body for reading. os.Open would first try to register
// the regular file with the network poller (two fcntl calls, a failing
// epoll_ctl and two more fcntl calls per open); a blocking descriptor
// wrapped by os.NewFile skips that, and still goes out with sendfile(2).
func openFile(name string) (*os.File, error) {
	for {
		fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

//go:build !linux

package logpub

import "os"

// threadID is %{tid}P; without a portable thread id it is the process id.
func threadID() uint64 { return uint64(os.Getpid()) }

package logpub

import "syscall"

// threadID is %{tid}P: the OS thread running the formatter.
func threadID() uint64 { return uint64(syscall.Gettid()) }

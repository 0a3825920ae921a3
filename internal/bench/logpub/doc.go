// Package logpubbench compares logpub's middleware with
// github.com/gorilla/handlers' CombinedLoggingHandler in one benchmark
// binary. It is a separate module so that the main go.mod does not list
// gorilla/handlers.
//
//	cd internal/bench/logpub && go test -run '^$' -bench . -count 5
package logpubbench

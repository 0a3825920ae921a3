module github.com/peerscale/peerscale/internal/bench/logpub

go 1.26

replace github.com/peerscale/peerscale => ../../..

require (
	github.com/gorilla/handlers v1.5.2
	github.com/peerscale/peerscale v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.47.0
)

require github.com/felixge/httpsnoop v1.0.3 // indirect

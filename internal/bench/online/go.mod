module github.com/peerscale/peerscale/internal/bench/online

go 1.26

replace github.com/peerscale/peerscale => ../../..

require (
	github.com/go-sql-driver/mysql v1.10.1
	github.com/google/btree v1.1.3
	github.com/peerscale/peerscale v0.0.0-00010101000000-000000000000
)

require filippo.io/edwards25519 v1.2.0 // indirect

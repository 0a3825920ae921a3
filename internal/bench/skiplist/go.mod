module github.com/peerscale/peerscale/internal/bench/skiplist

go 1.26

replace github.com/peerscale/peerscale => ../../..

require (
	github.com/google/btree v1.1.3
	github.com/huandu/skiplist v1.2.1
	github.com/peerscale/peerscale v0.0.0-00010101000000-000000000000
	github.com/tidwall/btree v1.8.2
)

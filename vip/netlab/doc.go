// Package netlab builds throw-away network labs for tests of virtual IP
// failover, as net/http/httptest does for HTTP: a switch namespace with a
// bridge and one namespace per host, each with eth0 on the bridge, using
// addresses from 198.18.0.0/15 and 2001:2::/48 only. A client host's
// neighbour table is watched through netlink events. It needs Linux, root
// and iproute2; RequireRoot skips (or fails, with
// PEERSCALE_REQUIRE_ROOT_TESTS=1) otherwise.
package netlab

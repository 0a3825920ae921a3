package cluster

import (
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Bus. The zero value is valid and equals LANConfig();
// each field documents its default.
type Config struct {
	// BindAddr is the IP address memberlist and the data links listen on.
	// Empty means 127.0.0.1.
	BindAddr string
	// GossipPort is memberlist's UDP and TCP port. Zero picks a free port.
	GossipPort int
	// DataPort is the TCP port of the data links. Zero picks a free port.
	DataPort int
	// Seeds are memberlist addresses ("host:port") joined at start and
	// re-joined periodically. Empty starts a new cluster.
	Seeds []string

	// Label keeps clusters apart: memberlist drops packets of another
	// label and data links refuse peers with another label.
	Label string
	// Key, when set (16, 24 or 32 bytes), encrypts memberlist's traffic
	// with its keyring and authenticates and encrypts every data link with
	// AES-256-GCM keyed from Key and each connection's handshake. A
	// process without the key can neither join nor read or inject
	// messages. Nil means no encryption.
	Key []byte

	// ProbeInterval, ProbeTimeout, SuspicionMult and GossipInterval tune
	// memberlist's failure detector. Zero means the LAN profile: 200 ms,
	// 100 ms, 3 and 50 ms, which detects a crashed member in about 1 s.
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	SuspicionMult  int
	GossipInterval time.Duration
	// RejoinInterval is how often seeds and recently seen members that are
	// not currently alive are joined again, so that partitions re-merge.
	// Zero means 5 s; negative disables it.
	RejoinInterval time.Duration

	// MaxMessageSize is the largest payload Send accepts. Zero means 1 MiB.
	MaxMessageSize int
	// QueueLen bounds the messages buffered per joined group before
	// receiving stops reading (backpressure). Zero means 4096.
	QueueLen int
	// Window bounds the messages sent to one member and not yet
	// acknowledged; Send blocks while it is full. Zero means 8192.
	Window int
	// WindowBytes bounds the payload bytes in the same window. Zero means
	// 16 MiB.
	WindowBytes int
	// SyncTimeout bounds how long a new coordinator waits for the state of
	// the other members before installing views. Zero means 1 s.
	SyncTimeout time.Duration
	// DialTimeout bounds a data link's connect and handshake. Zero means 2 s.
	DialTimeout time.Duration
	// LinkTimeout is how long the data link to a member may stay down
	// (or leave frames unacknowledged) while memberlist still reports it
	// alive (TCP blocked, UDP not) before one of the two is excluded from
	// the views (the younger); it comes back once the link works again.
	// Zero means 3 s; negative disables the check.
	LinkTimeout time.Duration
	// SlowTimeout is how long a member may hold back a group's credit (its
	// application stopped reading) while senders wait before it is excluded
	// from the views instead of blocking them forever; it comes back once
	// it reads again. Zero means 10 s; negative disables the check.
	SlowTimeout time.Duration

	// Memberlist, if set, is called with the memberlist configuration just
	// before memberlist is created, to adjust what Config does not expose
	// (a Transport for fault injection, other timers). Nil changes nothing.
	Memberlist func(*memberlist.Config)
	// Logger receives operational logs; memberlist's own log is bridged to
	// it. Nil means slog.Default().
	Logger *slog.Logger

	// wrapConn, if set, wraps every data connection (fault injection in
	// tests).
	wrapConn func(net.Conn) net.Conn
}

// LANConfig returns the default profile for members on one LAN: a crashed
// member is detected in about 1 s.
func LANConfig() Config {
	return Config{
		ProbeInterval:  200 * time.Millisecond,
		ProbeTimeout:   100 * time.Millisecond,
		SuspicionMult:  3,
		GossipInterval: 50 * time.Millisecond,
		RejoinInterval: 5 * time.Second,
	}
}

// WANConfig returns a profile for members spread over a WAN: slower
// failure detection (several seconds) that tolerates higher latency and
// loss.
func WANConfig() Config {
	return Config{
		ProbeInterval:  3 * time.Second,
		ProbeTimeout:   2 * time.Second,
		SuspicionMult:  6,
		GossipInterval: 500 * time.Millisecond,
		RejoinInterval: 30 * time.Second,
		DialTimeout:    10 * time.Second,
		SyncTimeout:    5 * time.Second,
		LinkTimeout:    15 * time.Second,
		SlowTimeout:    30 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	lan := LANConfig()
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1"
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = lan.ProbeInterval
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = lan.ProbeTimeout
	}
	if c.SuspicionMult <= 0 {
		c.SuspicionMult = lan.SuspicionMult
	}
	if c.GossipInterval <= 0 {
		c.GossipInterval = lan.GossipInterval
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = lan.RejoinInterval
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 1 << 20
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 4096
	}
	if c.Window <= 0 {
		c.Window = 8192
	}
	if c.WindowBytes <= 0 {
		c.WindowBytes = 16 << 20
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.LinkTimeout == 0 {
		c.LinkTimeout = 3 * time.Second
	}
	if c.SlowTimeout == 0 {
		c.SlowTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

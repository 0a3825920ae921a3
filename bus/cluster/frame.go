package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/peerscale/peerscale/bus"
)

// Frame types. A record carries one or more frames, each a type byte, a
// uvarint body length and the body. Sequenced frames (data, view, state,
// stable) start their body with the link sequence number.
const (
	fHello  byte = 1
	fData   byte = 2
	fUnrel  byte = 3
	fAck    byte = 4
	fView   byte = 5
	fState  byte = 6
	fStable byte = 7
	fBye    byte = 8
	fSynced byte = 9
	fCredit byte = 10
	// Agreed order (agreed.go).
	fOrder    byte = 11 // sequencer → members: order tokens
	fFwd      byte = 12 // a payload passed on by another member
	fProgress byte = 13 // member → sequencer: last order delivered
	fFlushReq byte = 14 // coordinator → member: pass on your order tail
	fFlush    byte = 15 // member → member: order entries after a failover
	// fPing carries nothing: its acknowledgement shows that the peer
	// still reads the link (a death memberlist reports is checked first).
	fPing byte = 16
)

func sequenced(t byte) bool {
	switch t {
	case fData, fView, fState, fStable, fSynced, fCredit, fOrder, fFwd, fProgress, fFlushReq, fFlush, fPing:
		return true
	}
	return false
}

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("cluster: malformed frame")

const (
	protoVersion = 2 // 2: fPing; a state reports the members of the last view delivered
	helloMagic   = "PSBL"
	nonceLen     = 32
	maxNameLen   = 256
	maxLabelLen  = 256
	maxAddrLen   = 256
)

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
	d.b = nil
}

func (d *dec) byte1(what string) byte {
	if len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u64(what string) uint64 {
	if len(d.b) < 8 {
		d.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) raw(n int, what string) []byte {
	if n < 0 || len(d.b) < n {
		d.fail(what)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str(max int, what string) string {
	n := d.uvarint(what)
	if n > uint64(max) {
		d.fail(what + " too long")
		return ""
	}
	return string(d.raw(int(n), what))
}

// count reads an element count, each element taking at least min bytes, so
// that a forged count cannot make the decoder allocate more than the input.
func (d *dec) count(min int, what string) int {
	n := d.uvarint(what)
	if n > uint64(len(d.b)/min) {
		d.fail(what + " count")
		return 0
	}
	return int(n)
}

func (d *dec) member(what string) bus.MemberID {
	name := d.str(maxNameLen, what)
	return bus.MemberID{Name: name, Incarnation: d.u64(what)}
}

// members decodes a count and that many member ids; what names them in
// errors.
func (d *dec) members(what string) []bus.MemberID {
	n := d.count(9, what)
	if n == 0 {
		return nil
	}
	ms := make([]bus.MemberID, 0, n)
	for range n {
		ms = append(ms, d.member(what))
	}
	return ms
}

func (d *dec) done(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(what + ": trailing bytes")
	}
	return d.err
}

func putStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putMember(b []byte, m bus.MemberID) []byte {
	b = putStr(b, m.Name)
	return binary.BigEndian.AppendUint64(b, m.Incarnation)
}

func putMembers(b []byte, ms []bus.MemberID) []byte {
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = putMember(b, m)
	}
	return b
}

// eachFrame calls fn for each frame of a record.
func eachFrame(rec []byte, fn func(typ byte, body []byte) error) error {
	for len(rec) > 0 {
		typ := rec[0]
		n, k := binary.Uvarint(rec[1:])
		if k <= 0 || n > uint64(len(rec)-1-k) {
			return fmt.Errorf("%w: frame length", errMalformed)
		}
		body := rec[1+k : 1+k+int(n)]
		rec = rec[1+k+int(n):]
		if err := fn(typ, body); err != nil {
			return err
		}
	}
	return nil
}

// appendFrame appends a frame; seq is written first when the type is
// sequenced.
func appendFrame(b []byte, typ byte, seq uint64, body []byte) []byte {
	var sb [binary.MaxVarintLen64]byte
	sn := 0
	if sequenced(typ) {
		sn = binary.PutUvarint(sb[:], seq)
	}
	b = append(b, typ)
	b = binary.AppendUvarint(b, uint64(sn+len(body)))
	b = append(b, sb[:sn]...)
	return append(b, body...)
}

// hello opens each direction of a link.
type hello struct {
	Label    string
	From, To bus.MemberID
	Nonce    [nonceLen]byte
	Sealed   bool
	// FromEpoch identifies the sender's link state; ToEpoch is the
	// receiver's link state as the sender last saw it (zero: never).
	// LastRecv is meaningful only when ToEpoch is the receiver's epoch.
	FromEpoch, ToEpoch uint64
	LastRecv           uint64
	// Credit is how many messages per group the sender of the hello
	// buffers for each peer before that peer must wait for credit.
	Credit uint64
}

func (h *hello) encode() []byte {
	b := append([]byte(nil), helloMagic...)
	b = append(b, protoVersion)
	b = putStr(b, h.Label)
	b = putMember(b, h.From)
	b = putMember(b, h.To)
	b = append(b, h.Nonce[:]...)
	s := byte(0)
	if h.Sealed {
		s = 1
	}
	b = append(b, s)
	b = binary.BigEndian.AppendUint64(b, h.FromEpoch)
	b = binary.BigEndian.AppendUint64(b, h.ToEpoch)
	b = binary.AppendUvarint(b, h.LastRecv)
	return binary.AppendUvarint(b, h.Credit)
}

var errVersion = errors.New("cluster: unsupported protocol version")

func decodeHello(p []byte) (hello, error) {
	var h hello
	d := dec{b: p}
	if string(d.raw(len(helloMagic), "magic")) != helloMagic {
		return h, fmt.Errorf("%w: bad magic", errMalformed)
	}
	if v := d.byte1("version"); d.err == nil && v != protoVersion {
		return h, fmt.Errorf("%w %d", errVersion, v)
	}
	h.Label = d.str(maxLabelLen, "label")
	h.From = d.member("from")
	h.To = d.member("to")
	copy(h.Nonce[:], d.raw(nonceLen, "nonce"))
	switch d.byte1("sealed") {
	case 0:
	case 1:
		h.Sealed = true
	default:
		d.fail("sealed flag")
	}
	h.FromEpoch = d.u64("from epoch")
	h.ToEpoch = d.u64("to epoch")
	h.LastRecv = d.uvarint("last received")
	h.Credit = d.uvarint("credit")
	if d.err == nil && (h.Credit == 0 || h.Credit > 1<<30) {
		d.fail("credit")
	}
	return h, d.done("hello")
}

// encodeData returns the shared part of a data frame: the same bytes go on
// every link a message is multicast on.
func encodeData(level bus.Level, viewSeq uint64, group string, payload []byte) []byte {
	return encodeTotal(level, viewSeq, 0, 0, group, payload)
}

// Flags of a totally ordered message.
const (
	flagOpen     = 1 // from a non-member: the sequencer passes it on to late joiners
	flagResubmit = 2 // sent again to a new sequencer
)

// encodeTotal is encodeData with the sender's sequence number of the
// group and flags, which messages of the total levels carry.
func encodeTotal(level bus.Level, viewSeq, seq uint64, flags byte, group string, payload []byte) []byte {
	b := make([]byte, 0, 3+binary.MaxVarintLen64*3+len(group)+len(payload))
	b = append(b, byte(level))
	b = binary.AppendUvarint(b, viewSeq)
	if level.Total() {
		b = binary.AppendUvarint(b, seq)
		b = append(b, flags)
	}
	b = putStr(b, group)
	return append(b, payload...)
}

type dataMsg struct {
	Level   bus.Level
	ViewSeq uint64
	Seq     uint64 // total levels: the sender's sequence number in the group
	Flags   byte   // total levels
	Group   string
	Payload []byte // aliases the record
}

func decodeData(p []byte) (dataMsg, error) {
	var m dataMsg
	d := dec{b: p}
	m.Level = bus.Level(d.byte1("level"))
	m.ViewSeq = d.uvarint("view")
	if m.Level.Total() {
		m.Seq = d.uvarint("sequence")
		m.Flags = d.byte1("flags")
		if d.err == nil && m.Flags&^(flagOpen|flagResubmit) != 0 {
			d.fail("flags")
		}
	}
	n := d.uvarint("group")
	if n > bus.MaxGroupName {
		d.fail("group too long")
	}
	m.Group = string(d.raw(int(n), "group"))
	if d.err != nil {
		return m, d.err
	}
	if !m.Level.Valid() {
		return m, fmt.Errorf("%w: level %d", errMalformed, m.Level)
	}
	if err := bus.ValidateGroup(m.Group); err != nil {
		return m, fmt.Errorf("%w: %w", errMalformed, err)
	}
	m.Payload = d.b
	return m, nil
}

// viewMsg is a view as installed by the coordinator.
type viewMsg struct {
	Group    string
	ID       bus.ViewID
	Members  []bus.MemberID
	Previous []bus.ViewID
	// Ord is the view's position in the group's Agreed order.
	Ord uint64
	// Reset marks the first view of a new sequencer: entries of the
	// order before Ord that a member still misses are skipped.
	Reset bool
}

func (v *viewMsg) append(b []byte) []byte {
	b = putStr(b, v.Group)
	b = binary.AppendUvarint(b, v.ID.Seq)
	b = putMember(b, v.ID.Coord)
	b = putMembers(b, v.Members)
	b = binary.AppendUvarint(b, uint64(len(v.Previous)))
	for _, p := range v.Previous {
		b = binary.AppendUvarint(b, p.Seq)
		b = putMember(b, p.Coord)
	}
	b = binary.AppendUvarint(b, v.Ord)
	r := byte(0)
	if v.Reset {
		r = 1
	}
	return append(b, r)
}

func (d *dec) view() viewMsg {
	var v viewMsg
	v.Group = d.str(bus.MaxGroupName, "view group")
	v.ID.Seq = d.uvarint("view seq")
	v.ID.Coord = d.member("view coord")
	v.Members = d.members("view members")
	n := d.count(10, "view previous")
	for range n {
		seq := d.uvarint("previous seq")
		v.Previous = append(v.Previous, bus.ViewID{Seq: seq, Coord: d.member("previous coord")})
	}
	v.Ord = d.uvarint("view order")
	switch d.byte1("view reset") {
	case 0:
	case 1:
		v.Reset = true
	default:
		d.fail("view reset flag")
	}
	if d.err == nil {
		if err := bus.ValidateGroup(v.Group); err != nil {
			d.fail("view group name")
		}
	}
	return v
}

func decodeView(p []byte) (viewMsg, error) {
	d := dec{b: p}
	v := d.view()
	return v, d.done("view")
}

// stateMsg is what a member tells the coordinator: the groups it belongs
// to (or is joining) and the latest view it knows of every group.
type stateMsg struct {
	Joined []string
	Views  []viewMsg
	// Orders is, for each joined group, how far this member has received
	// the group's Agreed order (for a new sequencer's flush).
	Orders []orderState
	// Unreachable lists the live members this member's links have failed
	// to reach for LinkTimeout; Slow those that stopped reading for
	// SlowTimeout.
	Unreachable, Slow []bus.MemberID
}

// orderState is a member's progress in one group's Agreed order.
type orderState struct {
	Group string
	// Recv is the last order position received without a gap, Stable the
	// last one known delivered everywhere (retained entries start after
	// it).
	Recv, Stable uint64
	// High holds, per sender, the highest sequence number ordered.
	High []senderSeq
	// View is the last view this member delivered, Members its members.
	View    bus.ViewID
	Members []bus.MemberID
}

type senderSeq struct {
	Sender bus.MemberID
	Seq    uint64
}

func (s *stateMsg) encode() []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(s.Joined)))
	for _, g := range s.Joined {
		b = putStr(b, g)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Views)))
	for i := range s.Views {
		b = s.Views[i].append(b)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Orders)))
	for _, o := range s.Orders {
		b = putStr(b, o.Group)
		b = binary.AppendUvarint(b, o.Recv)
		b = binary.AppendUvarint(b, o.Stable)
		b = binary.AppendUvarint(b, uint64(len(o.High)))
		for _, h := range o.High {
			b = putMember(b, h.Sender)
			b = binary.AppendUvarint(b, h.Seq)
		}
		b = binary.AppendUvarint(b, o.View.Seq)
		b = putMember(b, o.View.Coord)
		b = putMembers(b, o.Members)
	}
	b = putMembers(b, s.Unreachable)
	b = putMembers(b, s.Slow)
	return b
}

func decodeState(p []byte) (stateMsg, error) {
	var s stateMsg
	d := dec{b: p}
	n := d.count(2, "joined")
	for range n {
		g := d.str(bus.MaxGroupName, "joined group")
		if d.err == nil && bus.ValidateGroup(g) != nil {
			d.fail("joined group name")
		}
		s.Joined = append(s.Joined, g)
	}
	n = d.count(16, "views")
	for range n {
		s.Views = append(s.Views, d.view())
	}
	n = d.count(15, "orders")
	for range n {
		var o orderState
		o.Group = d.str(bus.MaxGroupName, "order group")
		o.Recv = d.uvarint("order received")
		o.Stable = d.uvarint("order stable")
		k := d.count(10, "order senders")
		for range k {
			m := d.member("order sender")
			o.High = append(o.High, senderSeq{m, d.uvarint("order seq")})
		}
		o.View.Seq = d.uvarint("order view")
		o.View.Coord = d.member("order view coord")
		o.Members = d.members("order view members")
		s.Orders = append(s.Orders, o)
	}
	s.Unreachable = d.members("unreachable")
	s.Slow = d.members("slow")
	return s, d.done("state")
}

// credit returns n consumed messages of group to their sender.
func encodeCredit(group string, n int) []byte {
	return binary.AppendUvarint(putStr(nil, group), uint64(n))
}

func decodeCredit(p []byte) (string, int, error) {
	d := dec{b: p}
	g := d.str(bus.MaxGroupName, "credit group")
	n := d.uvarint("credit")
	if d.err == nil && n > 1<<31 {
		d.fail("credit too large")
	}
	return g, int(n), d.done("credit")
}

// stable tells the members of a view that every live member has it.
func encodeStable(group string, seq uint64) []byte {
	return binary.AppendUvarint(putStr(nil, group), seq)
}

func decodeStable(p []byte) (string, uint64, error) {
	d := dec{b: p}
	g := d.str(bus.MaxGroupName, "stable group")
	seq := d.uvarint("stable seq")
	return g, seq, d.done("stable")
}

// meta is the memberlist node metadata of a member.
type meta struct {
	Incarnation uint64
	Boot        int64 // unix nanoseconds; orders members oldest first
	DataAddr    string
}

func (m *meta) encode() []byte {
	b := []byte{protoVersion}
	b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Boot))
	return putStr(b, m.DataAddr)
}

func decodeMeta(p []byte) (meta, error) {
	var m meta
	d := dec{b: p}
	if v := d.byte1("meta version"); d.err == nil && v != protoVersion {
		return m, fmt.Errorf("%w %d", errVersion, v)
	}
	m.Incarnation = d.u64("incarnation")
	m.Boot = int64(d.u64("boot"))
	m.DataAddr = d.str(maxAddrLen, "data address")
	return m, d.done("meta")
}

// token names one message of the Agreed order: its sender and the
// sender's sequence number in the group.
type token struct {
	Sender bus.MemberID
	Seq    uint64
}

// orderMsg is a batch of tokens: positions First, First+1, ... of the
// group's order. Stable is the last position every member delivered.
type orderMsg struct {
	Group  string
	First  uint64
	Stable uint64
	Tokens []token
}

func (o *orderMsg) encode() []byte {
	b := putStr(nil, o.Group)
	b = binary.AppendUvarint(b, o.First)
	b = binary.AppendUvarint(b, o.Stable)
	b = binary.AppendUvarint(b, uint64(len(o.Tokens)))
	for _, t := range o.Tokens {
		b = putMember(b, t.Sender)
		b = binary.AppendUvarint(b, t.Seq)
	}
	return b
}

func decodeOrder(p []byte) (orderMsg, error) {
	var o orderMsg
	d := dec{b: p}
	o.Group = d.str(bus.MaxGroupName, "order group")
	o.First = d.uvarint("order first")
	o.Stable = d.uvarint("order stable")
	n := d.count(10, "order tokens")
	o.Tokens = make([]token, 0, n)
	for range n {
		m := d.member("token sender")
		o.Tokens = append(o.Tokens, token{m, d.uvarint("token seq")})
	}
	if d.err == nil && o.First == 0 && len(o.Tokens) > 0 {
		d.fail("order position 0")
	}
	return o, d.done("order")
}

// encodeFwd wraps the data body of a message from sender that another
// member passes on.
func encodeFwd(sender bus.MemberID, body []byte) []byte {
	return append(putMember(nil, sender), body...)
}

func decodeFwd(p []byte) (bus.MemberID, dataMsg, error) {
	d := dec{b: p}
	m := d.member("forwarded sender")
	if d.err != nil {
		return m, dataMsg{}, d.err
	}
	dm, err := decodeData(d.b)
	if err == nil && !dm.Level.Total() {
		err = fmt.Errorf("%w: forwarded %s message", errMalformed, dm.Level)
	}
	return m, dm, err
}

// encodeProgress reports the last order position delivered in group
// (fProgress), or asks for the order entries after from up to to
// (fFlushReq, with to).
func encodeProgress(group string, pos ...uint64) []byte {
	b := putStr(nil, group)
	for _, p := range pos {
		b = binary.AppendUvarint(b, p)
	}
	return b
}

func decodeProgress(p []byte, n int) (string, []uint64, error) {
	d := dec{b: p}
	g := d.str(bus.MaxGroupName, "progress group")
	pos := make([]uint64, n)
	for i := range pos {
		pos[i] = d.uvarint("progress position")
	}
	return g, pos, d.done("progress")
}

// flushEntry is one position of the order passed on after a failover: a
// token with or without its payload, or a view.
type flushEntry struct {
	Ord     uint64
	Token   token
	Level   bus.Level // with a payload
	Payload []byte    // nil: the token alone
	View    *viewMsg
}

const (
	flushToken   = 1
	flushPayload = 2
	flushView    = 3
)

func encodeFlush(group string, es []flushEntry) []byte {
	b := putStr(nil, group)
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = binary.AppendUvarint(b, e.Ord)
		switch {
		case e.View != nil:
			b = append(b, flushView)
			b = e.View.append(b)
		case e.Payload != nil:
			b = append(b, flushPayload)
			b = putMember(b, e.Token.Sender)
			b = binary.AppendUvarint(b, e.Token.Seq)
			b = append(b, byte(e.Level))
			b = binary.AppendUvarint(b, uint64(len(e.Payload)))
			b = append(b, e.Payload...)
		default:
			b = append(b, flushToken)
			b = putMember(b, e.Token.Sender)
			b = binary.AppendUvarint(b, e.Token.Seq)
		}
	}
	return b
}

func decodeFlush(p []byte) (string, []flushEntry, error) {
	d := dec{b: p}
	g := d.str(bus.MaxGroupName, "flush group")
	n := d.count(12, "flush entries")
	es := make([]flushEntry, 0, n)
	for range n {
		e := flushEntry{Ord: d.uvarint("flush position")}
		switch d.byte1("flush kind") {
		case flushView:
			v := d.view()
			e.View = &v
		case flushPayload:
			e.Token.Sender = d.member("flush sender")
			e.Token.Seq = d.uvarint("flush seq")
			e.Level = bus.Level(d.byte1("flush level"))
			if d.err == nil && !e.Level.Total() {
				d.fail("flush level")
			}
			k := d.uvarint("flush payload")
			e.Payload = d.raw(int(min(k, uint64(len(d.b)+1))), "flush payload")
			if e.Payload == nil {
				e.Payload = []byte{}
			}
		case flushToken:
			e.Token.Sender = d.member("flush sender")
			e.Token.Seq = d.uvarint("flush seq")
		default:
			d.fail("flush kind")
		}
		if d.err != nil {
			break
		}
		es = append(es, e)
	}
	return g, es, d.done("flush")
}

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
)

func sequenced(t byte) bool {
	switch t {
	case fData, fView, fState, fStable, fSynced, fCredit:
		return true
	}
	return false
}

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("cluster: malformed frame")

const (
	protoVersion = 1
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

// dataBody is the shared part of a data frame: the same bytes go on every
// link a message is multicast on.
func encodeData(level bus.Level, viewSeq uint64, group string, payload []byte) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64*2+len(group)+len(payload))
	b = append(b, byte(level))
	b = binary.AppendUvarint(b, viewSeq)
	b = putStr(b, group)
	return append(b, payload...)
}

type dataMsg struct {
	Level   bus.Level
	ViewSeq uint64
	Group   string
	Payload []byte // aliases the record
}

func decodeData(p []byte) (dataMsg, error) {
	var m dataMsg
	d := dec{b: p}
	m.Level = bus.Level(d.byte1("level"))
	m.ViewSeq = d.uvarint("view")
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
}

func (v *viewMsg) append(b []byte) []byte {
	b = putStr(b, v.Group)
	b = binary.AppendUvarint(b, v.ID.Seq)
	b = putMember(b, v.ID.Coord)
	b = binary.AppendUvarint(b, uint64(len(v.Members)))
	for _, m := range v.Members {
		b = putMember(b, m)
	}
	b = binary.AppendUvarint(b, uint64(len(v.Previous)))
	for _, p := range v.Previous {
		b = binary.AppendUvarint(b, p.Seq)
		b = putMember(b, p.Coord)
	}
	return b
}

func (d *dec) view() viewMsg {
	var v viewMsg
	v.Group = d.str(bus.MaxGroupName, "view group")
	v.ID.Seq = d.uvarint("view seq")
	v.ID.Coord = d.member("view coord")
	n := d.count(9, "view members")
	v.Members = make([]bus.MemberID, 0, n)
	for range n {
		v.Members = append(v.Members, d.member("view member"))
	}
	n = d.count(10, "view previous")
	for range n {
		seq := d.uvarint("previous seq")
		v.Previous = append(v.Previous, bus.ViewID{Seq: seq, Coord: d.member("previous coord")})
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
	n = d.count(14, "views")
	for range n {
		s.Views = append(s.Views, d.view())
	}
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

package bus

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MemberID identifies one incarnation of a member. Name is chosen by the
// operator (a host name, say); Incarnation is random per start, so a member
// restarted under the same name is a different MemberID and its messages are
// never mistaken for the old incarnation's. MemberID is comparable and can be
// a map key.
type MemberID struct {
	Name        string
	Incarnation uint64
}

// String returns "name#incarnation" with the incarnation in hex.
func (m MemberID) String() string {
	return m.Name + "#" + strconv.FormatUint(m.Incarnation, 16)
}

// IsZero reports whether m is the zero MemberID.
func (m MemberID) IsZero() bool { return m == MemberID{} }

// Compare orders member ids by name, then incarnation.
func (m MemberID) Compare(o MemberID) int {
	if c := strings.Compare(m.Name, o.Name); c != 0 {
		return c
	}
	return cmp.Compare(m.Incarnation, o.Incarnation)
}

// ParseMemberID parses the form printed by MemberID.String.
func ParseMemberID(s string) (MemberID, error) {
	i := strings.LastIndexByte(s, '#')
	if i < 0 {
		return MemberID{}, fmt.Errorf("bus: member id %q: missing '#'", s)
	}
	inc, err := strconv.ParseUint(s[i+1:], 16, 64)
	if err != nil {
		return MemberID{}, fmt.Errorf("bus: member id %q: %w", s, err)
	}
	return MemberID{Name: s[:i], Incarnation: inc}, nil
}

// ViewID identifies a view of a group. Seq strictly increases from one view
// to the next at every member; Coord is the member that installed the view
// (its leader), which keeps ids of views installed concurrently on both
// sides of a partition distinct.
type ViewID struct {
	Seq   uint64
	Coord MemberID
}

// String returns "seq@coord".
func (v ViewID) String() string { return strconv.FormatUint(v.Seq, 10) + "@" + v.Coord.String() }

// IsZero reports whether v is the zero ViewID.
func (v ViewID) IsZero() bool { return v == ViewID{} }

// Compare orders view ids by Seq, then Coord.
func (v ViewID) Compare(o ViewID) int {
	if c := cmp.Compare(v.Seq, o.Seq); c != 0 {
		return c
	}
	return v.Coord.Compare(o.Coord)
}

// View is a membership view of one group as delivered to one member.
// Every member of the view receives the same ID, Members and Previous;
// Self, Joined and Left are relative to the receiver.
type View struct {
	// Group is the group name.
	Group string
	// ID strictly increases from view to view.
	ID ViewID
	// Members lists the members in one order identical at every member:
	// oldest first, so Members[0] is the leader.
	Members []MemberID
	// Self is this member's index in Members.
	Self int
	// Joined lists the members that are in this view but were not in the
	// receiver's previous view (for a merge: the members of the other sides;
	// for the receiver's first view: every member, itself included).
	Joined []MemberID
	// Left lists the members of the receiver's previous view that are not in
	// this one, whether they left, crashed or were partitioned away.
	Left []MemberID
	// Previous lists the ids of the views this one replaces, the same at
	// every member: none for the group's first view, one normally, and the
	// last view id of every side when the view merges partitions.
	Previous []ViewID
}

func (*View) isEvent() {}

// Leader returns Members[0].
func (v *View) Leader() MemberID {
	if len(v.Members) == 0 {
		return MemberID{}
	}
	return v.Members[0]
}

// IsLeader reports whether the receiver is the leader of the view.
func (v *View) IsLeader() bool { return v.Self == 0 && len(v.Members) > 0 }

// IsMerge reports whether the view merges partitions (more than one
// previous view).
func (v *View) IsMerge() bool { return len(v.Previous) > 1 }

// Contains reports whether m is a member of the view.
func (v *View) Contains(m MemberID) bool { return slices.Contains(v.Members, m) }

// Index returns m's position in Members, or -1.
func (v *View) Index(m MemberID) int { return slices.Index(v.Members, m) }

// Clone returns a deep copy of v.
func (v *View) Clone() *View {
	c := *v
	c.Members = slices.Clone(v.Members)
	c.Joined = slices.Clone(v.Joined)
	c.Left = slices.Clone(v.Left)
	c.Previous = slices.Clone(v.Previous)
	return &c
}

func (v *View) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "view %s %s [", v.Group, v.ID)
	for i, m := range v.Members {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(m.String())
	}
	b.WriteByte(']')
	if len(v.Joined) > 0 {
		fmt.Fprintf(&b, " joined %v", v.Joined)
	}
	if len(v.Left) > 0 {
		fmt.Fprintf(&b, " left %v", v.Left)
	}
	if len(v.Previous) > 1 {
		fmt.Fprintf(&b, " merged %v", v.Previous)
	}
	return b.String()
}

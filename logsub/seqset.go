package logsub

import "sort"

// SeqRange is an inclusive range of record sequence numbers.
type SeqRange struct {
	Lo, Hi uint64
}

// seqSet is a set of sequence numbers kept as sorted, disjoint, non-adjacent
// ranges. Records of one publisher epoch arrive mostly in order, so adding
// usually extends the last range in O(1).
type seqSet struct {
	r []SeqRange
}

func (s *seqSet) contains(q uint64) bool {
	n := len(s.r)
	if n == 0 {
		return false
	}
	if last := s.r[n-1]; q >= last.Lo {
		return q <= last.Hi
	}
	i := sort.Search(n, func(i int) bool { return s.r[i].Hi >= q })
	return i < n && s.r[i].Lo <= q
}

// add inserts q, which must not be in the set.
func (s *seqSet) add(q uint64) {
	n := len(s.r)
	if n == 0 {
		s.r = append(s.r, SeqRange{q, q})
		return
	}
	if last := &s.r[n-1]; q > last.Hi {
		if q == last.Hi+1 {
			last.Hi = q
		} else {
			s.r = append(s.r, SeqRange{q, q})
		}
		return
	}
	i := sort.Search(n, func(i int) bool { return s.r[i].Hi >= q }) // first range above q
	joinPrev := i > 0 && s.r[i-1].Hi+1 == q
	joinNext := s.r[i].Lo == q+1
	switch {
	case joinPrev && joinNext:
		s.r[i-1].Hi = s.r[i].Hi
		s.r = append(s.r[:i], s.r[i+1:]...)
	case joinPrev:
		s.r[i-1].Hi = q
	case joinNext:
		s.r[i].Lo = q
	default:
		s.r = append(s.r, SeqRange{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = SeqRange{q, q}
	}
}

// squeeze merges the two lowest ranges while the set holds more than max
// ranges, declaring the gap between them seen. It returns how many sequence
// numbers were declared seen that way.
func (s *seqSet) squeeze(max int) uint64 {
	var lost uint64
	for len(s.r) > max && len(s.r) > 1 {
		lost += s.r[1].Lo - s.r[0].Hi - 1
		s.r[1].Lo = s.r[0].Lo
		s.r = s.r[1:]
	}
	return lost
}

func (s *seqSet) ranges() []SeqRange { return append([]SeqRange(nil), s.r...) }

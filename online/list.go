package online

// This file holds the two orderings the index keeps its records in: every
// user in one list ordered by last hit, and the users of each URL in a list
// of that URL ordered the same way. Both are skiplists whose towers live
// inside the user's record, so a record is linked into both orderings by
// one allocation (plus a second one for the one record in four whose tower
// is taller than one level), and moving or expiring a user unlinks it
// through its own links, without a search.

// maxLevel bounds tower heights. With p = 1/4, 16 levels serve 4^16 records.
const maxLevel = 16

// List kinds: which of a record's two towers a list uses.
const (
	byTime = 0
	byURL  = 1
)

// link is one level of a tower in one list.
type link struct {
	next, prev *rec // nil means the end of the list (the head for prev)
}

// rec is one tracked user.
type rec struct {
	user string
	url  *urlList
	t    int64 // last hit, Unix milliseconds
	t0   link  // level 0 in the time list
	u0   link  // level 0 in the URL's list
	// up holds levels 1..h-1 of both towers, interleaved: up[2(i-1)] is
	// level i of the time list, up[2(i-1)+1] level i of the URL list.
	up []link
}

func (r *rec) height() int { return 1 + len(r.up)/2 }

func (r *rec) lk(kind, level int) *link {
	if level == 0 {
		if kind == byTime {
			return &r.t0
		}
		return &r.u0
	}
	return &r.up[2*(level-1)+kind]
}

// slist is a skiplist of records ordered by t; records with equal t keep
// the order in which they were linked. head[i].next is the first record at
// level i, head[i].prev the last.
type slist struct {
	kind int
	n    int
	head []link
}

func (s *slist) first() *rec {
	if len(s.head) == 0 {
		return nil
	}
	return s.head[0].next
}

func (s *slist) last() *rec {
	if len(s.head) == 0 {
		return nil
	}
	return s.head[0].prev
}

// next returns the record after p at level i, p == nil meaning the head.
func (s *slist) next(p *rec, i int) *rec {
	if p == nil {
		return s.head[i].next
	}
	return p.lk(s.kind, i).next
}

// insert links r after every record whose t is <= r.t. The search starts
// at the tail and climbs only as high as the distance back requires, so an
// append (the common case: hits arrive roughly in time order) takes
// O(height) and a record d places from the end O(log d) expected.
func (s *slist) insert(r *rec) {
	h := r.height()
	for len(s.head) < h {
		s.head = append(s.head, link{})
	}
	var preds [maxLevel]*rec
	// Climb to the lowest level whose last record is not after r.
	top := 0
	for top < len(s.head) && s.head[top].prev != nil && s.head[top].prev.t > r.t {
		top++
	}
	var x *rec
	if top < len(s.head) {
		x = s.head[top].prev
		for i := top; i < h; i++ {
			preds[i] = s.head[i].prev
		}
	}
	for i := top - 1; i >= 0; i-- {
		for nx := s.next(x, i); nx != nil && nx.t <= r.t; nx = s.next(x, i) {
			x = nx
		}
		if i < h {
			preds[i] = x
		}
	}
	for i := range h {
		p := preds[i]
		nx := s.next(p, i)
		*r.lk(s.kind, i) = link{next: nx, prev: p}
		if p == nil {
			s.head[i].next = r
		} else {
			p.lk(s.kind, i).next = r
		}
		if nx == nil {
			s.head[i].prev = r
		} else {
			nx.lk(s.kind, i).prev = r
		}
	}
	s.n++
}

// remove unlinks r in O(height).
func (s *slist) remove(r *rec) {
	for i := range r.height() {
		l := r.lk(s.kind, i)
		if l.prev == nil {
			s.head[i].next = l.next
		} else {
			l.prev.lk(s.kind, i).next = l.next
		}
		if l.next == nil {
			s.head[i].prev = l.prev
		} else {
			l.next.lk(s.kind, i).prev = l.prev
		}
		*l = link{}
	}
	for len(s.head) > 1 && s.head[len(s.head)-1].next == nil {
		s.head = s.head[:len(s.head)-1]
	}
	s.n--
}

// urlList is the list of the users whose last hit was on one URL.
type urlList struct {
	name string
	s    slist
}

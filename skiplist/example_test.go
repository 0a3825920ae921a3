package skiplist_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/peerscale/peerscale/skiplist"
)

func ExampleMap() {
	m := skiplist.New[int, string]()
	m.Set(30, "thirty")
	m.Set(10, "ten")
	m.Set(20, "twenty")
	if _, inserted := m.Insert(20, "again"); !inserted {
		fmt.Println("20 already present")
	}

	v, ok := m.Get(10)
	fmt.Println(v, ok, m.Len())

	// Walk backward from the last key <= 25.
	var keys []int
	for e := m.Floor(25); e != nil; e = e.Prev() {
		keys = append(keys, e.Key())
	}
	fmt.Println(keys)

	for k, v := range m.Range(15, 35) {
		fmt.Println(k, v)
	}
	fmt.Println(m.PopFront().Key(), m.Len())
	// Output:
	// 20 already present
	// ten true 3
	// [20 10]
	// 20 twenty
	// 30 thirty
	// 10 2
}

func ExampleMap_Remove() {
	m := skiplist.New[string, int]()
	e := m.Set("b", 2)
	m.Set("a", 1)
	m.Set("c", 3)
	// A handle kept from Set removes its element without a search.
	m.Remove(e)
	for k := range m.All() {
		fmt.Print(k, " ")
	}
	fmt.Println()
	// Output: a c
}

// A time-ordered queue: PopFront takes the oldest entry in O(1). A popped
// element is read before the next insertion, which may reuse its slot.
func ExampleMap_PopFront() {
	q := skiplist.New[int64, string]()
	q.Set(1700000003, "c")
	q.Set(1700000001, "a")
	q.Set(1700000002, "b")
	for cutoff := int64(1700000002); q.Len() > 0 && q.Front().Key() <= cutoff; {
		e := q.PopFront()
		fmt.Println("expired", e.Key(), e.Value())
	}
	q.Set(1700000004, "d")
	for k, v := range q.All() {
		fmt.Println(k, v)
	}
	// Output:
	// expired 1700000001 a
	// expired 1700000002 b
	// 1700000003 c
	// 1700000004 d
}

func ExampleNewFunc() {
	// Case-insensitive keys, descending.
	m := skiplist.NewFunc[string, int](func(a, b string) int {
		return strings.Compare(strings.ToLower(b), strings.ToLower(a))
	})
	m.Set("apple", 1)
	m.Set("Cherry", 2)
	m.Set("banana", 3)
	m.Set("APPLE", 4)
	for k, v := range m.All() {
		fmt.Println(k, v)
	}
	// Output:
	// Cherry 2
	// banana 3
	// apple 4
}

// Hit is a who's-online record: a user's last request.
type Hit struct {
	User string
	URL  string
	Last time.Time
}

// urlTime orders hits by URL, then by time.
type urlTime struct {
	url string
	t   time.Time
}

func compareURLTime(a, b urlTime) int {
	if c := strings.Compare(a.url, b.url); c != 0 {
		return c
	}
	return a.t.Compare(b.t)
}

// The who's-online index: each user's last hit is stored once and ordered
// by user, by (URL, time) and by time.
func ExampleTable() {
	hits := skiplist.NewTable[Hit]()
	byUser := skiplist.NewIndex(hits, skiplist.Unique, func(h *Hit) string { return h.User })
	byURL := skiplist.NewIndexFunc(hits, skiplist.Multi,
		func(h *Hit) urlTime { return urlTime{h.URL, h.Last} }, compareURLTime)
	byTime := skiplist.NewIndexFunc(hits, skiplist.Multi,
		func(h *Hit) time.Time { return h.Last }, time.Time.Compare)

	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	hit := func(sec int, user, url string) {
		// Upsert moves a returning user's entry in every index whose
		// order changes: no search for the old position.
		if _, err := byUser.Upsert(Hit{user, url, t0.Add(time.Duration(sec) * time.Second)}); err != nil {
			panic(err)
		}
	}
	hit(0, "alice", "/")
	hit(1, "bob", "/news")
	hit(2, "carol", "/news")
	hit(3, "dave", "/news")
	hit(4, "alice", "/news") // alice moves from / to /news
	hit(5, "erin", "/")

	// Newest first on /news, at most 3.
	var recent []string
	for e := range byURL.Descend(urlTime{"/news", t0.Add(time.Hour)}) {
		h := e.Value()
		if h.URL != "/news" || len(recent) == 3 {
			break
		}
		recent = append(recent, h.User)
	}
	fmt.Println("on /news:", recent)
	fmt.Println("online:", hits.Len())

	// Expire users idle since before 12:00:02, oldest first.
	for e := byTime.Front(); e != nil && e.Value().Last.Before(t0.Add(2*time.Second)); e = byTime.Front() {
		h, _ := byTime.PopFront()
		fmt.Println("expired:", h.User)
	}
	fmt.Println("online:", hits.Len())
	fmt.Println("bob found:", byUser.Find("bob") != nil)
	// Output:
	// on /news: [alice dave carol]
	// online: 5
	// expired: bob
	// online: 4
	// bob found: false
}

package skiplist_test

import (
	"fmt"

	"github.com/peerscale/peerscale/skiplist"
)

// page is one URL and, as a Group, the users whose last hit was on it.
type page struct {
	url   string
	users skiplist.Group[lastHit]
}

// lastHit is a user's last hit: on which page, when.
type lastHit struct {
	user string
	page *page
	at   int64
}

// The who's-online index on a GroupIndex: the users of each page ordered
// by last hit, all users ordered by last hit, and a Go map by name beside
// the table. A returning user moves between pages through its own links;
// expiry pops the oldest user.
func ExampleGroupIndex() {
	hits := skiplist.NewTable[lastHit]()
	at := func(h *lastHit) int64 { return h.at }
	byTime := skiplist.NewIndex(hits, skiplist.Multi, at)
	onPage := skiplist.NewGroupIndex(hits, func(h *lastHit) *skiplist.Group[lastHit] { return &h.page.users }, at)

	pages := map[string]*page{}
	users := map[string]*skiplist.Entry[lastHit]{}
	hit := func(at int64, user, url string) {
		p := pages[url]
		if p == nil {
			p = &page{url: url}
			pages[url] = p
		}
		if e := users[user]; e != nil {
			if err := hits.Update(e, lastHit{user, p, at}); err != nil {
				panic(err)
			}
			return
		}
		e, err := hits.Insert(lastHit{user, p, at})
		if err != nil {
			panic(err)
		}
		users[user] = e
	}
	hit(0, "alice", "/")
	hit(1, "bob", "/news")
	hit(2, "carol", "/news")
	hit(3, "dave", "/news")
	hit(4, "alice", "/news") // alice moves from / to /news
	hit(5, "erin", "/")

	news := &pages["/news"].users
	var recent []string
	for e := range onPage.Backward(news) {
		if len(recent) == 3 {
			break
		}
		recent = append(recent, e.Value().user)
	}
	fmt.Println("on /news:", recent, "of", news.Len())
	fmt.Println("online:", hits.Len())

	// Expire users idle since before t = 2, oldest first.
	for e := byTime.Front(); e != nil && e.Value().at < 2; e = byTime.Front() {
		h, _ := byTime.PopFront()
		delete(users, h.user)
		fmt.Println("expired:", h.user, "from", h.page.url)
	}
	fmt.Println("online:", hits.Len(), "on /news:", news.Len())
	// Output:
	// on /news: [alice dave carol] of 4
	// online: 5
	// expired: bob from /news
	// online: 4 on /news: 3
}

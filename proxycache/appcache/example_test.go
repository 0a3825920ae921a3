package appcache_test

import (
	"context"
	"fmt"

	"github.com/peerscale/peerscale/proxycache/appcache"
)

func Example() {
	queries := 0
	c, err := appcache.New("example", appcache.GetterFunc(func(ctx context.Context, key string) ([]byte, error) {
		queries++
		return []byte("row for " + key), nil
	}), appcache.Config{Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	v, _ := c.Get(ctx, "article/1")
	v, _ = c.Get(ctx, "article/1")
	fmt.Println(string(v), queries)
	_ = c.InvalidateAll(ctx)
	v, _ = c.Get(ctx, "article/1")
	fmt.Println(string(v), queries)
	// Output:
	// row for article/1 1
	// row for article/1 2
}

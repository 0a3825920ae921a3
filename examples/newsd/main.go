// Command newsd is the news site of "Scalable Internet Architectures": an
// article page /items/12345.html is generated once from the database,
// written to <pages>/items/12345.html and served statically while the file
// exists; editing the article deletes the page on every member (over the
// bus with -bus), and the next request generates it again. Database reads
// go through a cluster-wide groupcache (package proxycache/appcache),
// invalidated by generation.
//
//	newsd -listen 127.0.0.1:8090 -pages /var/www/pages -bus -seeds 127.0.0.1:7946
//	curl http://127.0.0.1:8090/items/1.html
//	curl -X POST -d 'New title' http://127.0.0.1:8090/admin/articles/1
//
// The database is an in-memory stand-in seeded with three articles.
// SIGINT or SIGTERM shuts it down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/proxycache"
	"github.com/peerscale/peerscale/proxycache/appcache"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// database stands in for the article store.
type database struct {
	mu       sync.Mutex
	articles map[int]string
}

func (d *database) Get(ctx context.Context, key string) ([]byte, error) {
	id, err := strconv.Atoi(strings.TrimPrefix(key, "article/"))
	if err != nil {
		return nil, fmt.Errorf("newsd: bad key %q", key)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.articles[id]
	if !ok {
		return nil, fmt.Errorf("newsd: no article %d", id)
	}
	return []byte(t), nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("newsd", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", "127.0.0.1:8090", "address of the site")
	pages := fs.String("pages", "", "directory of generated pages (required)")
	useBus := fs.Bool("bus", false, "join the peerscale bus for cluster-wide invalidation")
	name := fs.String("name", "", "bus member name (default: newsd@host name)")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	gossipPort := fs.Int("gossip-port", 0, "bus gossip port (0 picks one)")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of bus members to join")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "bound on the graceful shutdown")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pages == "" || fs.NArg() > 0 {
		return errors.New("newsd: -pages is required, and no arguments")
	}
	var stack []func(context.Context) error
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		var errs []error
		for i := len(stack) - 1; i >= 0; i-- {
			errs = append(errs, stack[i](sctx))
		}
		return errors.Join(errs...)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	stack = append(stack, func(context.Context) error { l.Close(); return nil })

	var b bus.Bus
	if *useBus {
		n := *name
		if n == "" {
			h, _ := os.Hostname()
			n = "newsd@" + h
		}
		cfg := cluster.LANConfig()
		cfg.BindAddr, cfg.GossipPort = *bind, *gossipPort
		if *seeds != "" {
			cfg.Seeds = strings.Split(*seeds, ",")
		}
		cb, err := cluster.New(n, cfg)
		if err != nil {
			return errors.Join(err, shutdown())
		}
		b = cb
		stack = append(stack, func(context.Context) error { return cb.Close() })
	}

	db := &database{articles: map[int]string{1: "Scaling the image cluster", 2: "Spread at work", 3: "Who is online"}}
	self := "http://" + l.Addr().String() + "/_appcache"
	queries, err := appcache.New("articles", db, appcache.Config{SelfURL: self, Bus: b})
	if err != nil {
		return errors.Join(err, shutdown())
	}
	stack = append(stack, func(context.Context) error { return queries.Close() })

	gen := proxycache.GeneratorFunc(func(ctx context.Context, key string, w io.Writer) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(key, "items/"), ".html")
		if !ok || !strings.HasPrefix(key, "items/") {
			return fmt.Errorf("newsd: no page %q", key)
		}
		title, err := queries.Get(ctx, "article/"+id)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "<!doctype html><title>%[1]s</title><h1>%[1]s</h1><p>generated %s</p>\n",
			html.EscapeString(string(title)), time.Now().UTC().Format(time.RFC3339))
		return err
	})
	site, err := proxycache.NewPageCache(*pages, gen, proxycache.PageConfig{Bus: b, Group: "newsd.pages"})
	if err != nil {
		return errors.Join(err, shutdown())
	}
	stack = append(stack, func(context.Context) error { return site.Close() })

	mux := http.NewServeMux()
	mux.Handle("GET /items/", site)
	mux.Handle("/_appcache/", queries.Handler())
	mux.HandleFunc("POST /admin/articles/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		body, rerr := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil || rerr != nil || len(body) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		db.mu.Lock()
		db.articles[id] = strings.TrimSpace(string(body))
		db.mu.Unlock()
		// The write goes to the database first; then every member drops
		// the cached query results and the page.
		if err := queries.InvalidateAll(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err := site.Invalidate(r.Context(), "items/"+strconv.Itoa(id)+".html"); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "updated")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	stack = append(stack, func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	})
	fmt.Fprintf(out, "newsd: site on %s\n", l.Addr())
	<-ctx.Done()
	return shutdown()
}

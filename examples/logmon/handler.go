package main

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"github.com/peerscale/peerscale/logsub"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed static
var static embed.FS

// snapshotter is what the dashboard reads: a *logsub.Monitor, or an
// Aggregator in tests.
type snapshotter interface {
	Snapshot() logsub.Snapshot
}

// view is the JSON form of a snapshot sent to the page.
type view struct {
	Time         string       `json:"time"`
	WindowSec    float64      `json:"window_sec"`
	All          seriesView   `json:"all"`
	Servers      []seriesView `json:"servers"`
	Vhosts       []seriesView `json:"vhosts"`
	TopURLs      []countView  `json:"top_urls"`
	TopReferrers []countView  `json:"top_referrers"`
	Dropped      uint64       `json:"dropped"`
}

type seriesView struct {
	Name        string    `json:"name"`
	HitsPerSec  float64   `json:"hits_per_sec"`
	BytesPerSec float64   `json:"bytes_per_sec"`
	Hits        uint64    `json:"hits"`
	Status      [6]uint64 `json:"status"` // window hits by class: [other, 1xx, 2xx, 3xx, 4xx, 5xx]
	TotalHits   uint64    `json:"total_hits"`
	TotalBytes  uint64    `json:"total_bytes"`
}

type countView struct {
	Key  string `json:"key"`
	Hits uint64 `json:"hits"`
}

func toView(s logsub.Snapshot) view {
	sv := func(x logsub.Series) seriesView {
		return seriesView{Name: x.Name, HitsPerSec: x.HitsPerSec, BytesPerSec: x.BytesPerSec, Hits: x.Window.Hits,
			Status: x.Window.Status, TotalHits: x.Total.Hits, TotalBytes: x.Total.Bytes}
	}
	v := view{Time: s.Time.UTC().Format(time.RFC3339), WindowSec: s.Window.Seconds(), All: sv(s.All), Dropped: s.Dropped,
		Servers: []seriesView{}, Vhosts: []seriesView{}, TopURLs: []countView{}, TopReferrers: []countView{}}
	for _, x := range s.Servers {
		v.Servers = append(v.Servers, sv(x))
	}
	for _, x := range s.Vhosts {
		v.Vhosts = append(v.Vhosts, sv(x))
	}
	for _, c := range s.TopURLs {
		v.TopURLs = append(v.TopURLs, countView{c.Key, c.Hits})
	}
	for _, c := range s.TopReferrers {
		v.TopReferrers = append(v.TopReferrers, countView{c.Key, c.Hits})
	}
	return v
}

// newHandler serves the dashboard: / (the page), /events (Server-Sent
// Events, one snapshot every interval, the first at once), /snapshot.json
// and /metrics. Event streams end when stop ends, so that the server can
// shut down.
func newHandler(stop context.Context, src snapshotter, interval time.Duration) http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(sub))
	mux.HandleFunc("GET /snapshot.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(toView(src.Snapshot()))
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			data, _ := json.Marshal(toView(src.Snapshot()))
			if _, err := w.Write(append(append([]byte("data: "), data...), '\n', '\n')); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-stop.Done():
				return
			case <-t.C:
			}
		}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(monitorCollector{src})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// monitorCollector exports the totals of a snapshot as Prometheus metrics.
type monitorCollector struct{ src snapshotter }

var (
	hitsDesc = prometheus.NewDesc("logmon_hits_total", "Hits seen, by server and status class.",
		[]string{"server", "class"}, nil)
	bytesDesc = prometheus.NewDesc("logmon_bytes_total", "Response body bytes seen, by server.",
		[]string{"server"}, nil)
	vhostHitsDesc = prometheus.NewDesc("logmon_vhost_hits_total", "Hits seen, by virtual host and status class.",
		[]string{"vhost", "class"}, nil)
	rateDesc = prometheus.NewDesc("logmon_hits_per_second", "Hit rate over the sliding window, by server.",
		[]string{"server"}, nil)
	droppedDesc = prometheus.NewDesc("logmon_dropped_messages_total", "Messages the monitor dropped because it lagged.", nil, nil)
)

var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (monitorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hitsDesc, bytesDesc, vhostHitsDesc, rateDesc, droppedDesc} {
		ch <- d
	}
}

func (c monitorCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	for _, x := range s.Servers {
		for i, n := range x.Total.Status {
			ch <- prometheus.MustNewConstMetric(hitsDesc, prometheus.CounterValue, float64(n), x.Name, classNames[i])
		}
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(x.Total.Bytes), x.Name)
		ch <- prometheus.MustNewConstMetric(rateDesc, prometheus.GaugeValue, x.HitsPerSec, x.Name)
	}
	for _, x := range s.Vhosts {
		for i, n := range x.Total.Status {
			ch <- prometheus.MustNewConstMetric(vhostHitsDesc, prometheus.CounterValue, float64(n), x.Name, classNames[i])
		}
	}
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.Dropped))
}

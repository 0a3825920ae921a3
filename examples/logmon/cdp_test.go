package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// cdpPage drives one page of a headless Chromium over the DevTools
// protocol, listening on 127.0.0.1 only.
type cdpPage struct {
	t    *testing.T
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
}

// startChromium starts Chromium headless with remote debugging on a free
// loopback port and attaches to its blank page. It stops at the test's end.
func startChromium(t *testing.T, chromium string) *cdpPage {
	t.Helper()
	// Chromium's helper processes (zygote, renderers, crash handler) keep
	// writing to the profile for a moment after the browser exits, so the
	// profile is not a t.TempDir: it is removed after the whole process
	// group is gone, with a few retries.
	profile, err := os.MkdirTemp("", "logmon-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1300,1000",
		"--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--remote-allow-origins=http://127.0.0.1",
		"about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(profile)
		t.Fatalf("chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		// Helpers outside the group (if any) may still hold the profile.
		for i := 0; ; i++ {
			err := os.RemoveAll(profile)
			if err == nil {
				return
			}
			if i == 50 {
				t.Errorf("removing the Chromium profile: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`DevTools listening on ws://([0-9.:]+)/`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-found:
	case <-time.After(90 * time.Second):
		t.Fatal("chromium did not open its DevTools port in 90 s")
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("DevTools on %s, not loopback", addr)
	}
	resp, err := http.Get("http://" + addr + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			ws, err := websocket.Dial(tg.WebSocketDebuggerURL, "", "http://127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() })
			return &cdpPage{t: t, ws: ws}
		}
	}
	t.Fatalf("no page target in %+v", targets)
	return nil
}

// call sends one DevTools command and returns its result, skipping events.
func (p *cdpPage) call(method string, params any) json.RawMessage {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := p.next
	if err := websocket.JSON.Send(p.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	p.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var msg struct {
			ID     int
			Result json.RawMessage
			Error  *struct{ Message string }
		}
		if err := websocket.JSON.Receive(p.ws, &msg); err != nil {
			p.t.Fatalf("%s: %v", method, err)
		}
		if msg.ID != id {
			continue
		}
		if msg.Error != nil {
			p.t.Fatalf("%s: %s", method, msg.Error.Message)
		}
		return msg.Result
	}
}

func (p *cdpPage) navigate(url string) { p.call("Page.navigate", map[string]any{"url": url}) }

// eval evaluates a JavaScript expression and decodes its value into v.
func (p *cdpPage) eval(expr string, v any) {
	p.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage
		}
		ExceptionDetails *struct{ Text string }
	}
	if err := json.Unmarshal(p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r); err != nil {
		p.t.Fatal(err)
	}
	if r.ExceptionDetails != nil {
		p.t.Fatalf("%s: %s", expr, r.ExceptionDetails.Text)
	}
	if len(r.Result.Value) == 0 {
		r.Result.Value = []byte("null")
	}
	if err := json.Unmarshal(r.Result.Value, v); err != nil {
		p.t.Fatalf("%s = %s: %v", expr, r.Result.Value, err)
	}
}

// screenshot captures the page as PNG.
func (p *cdpPage) screenshot() []byte {
	p.t.Helper()
	var r struct{ Data string }
	if err := json.Unmarshal(p.call("Page.captureScreenshot", map[string]any{"format": "png"}), &r); err != nil {
		p.t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		p.t.Fatal(fmt.Errorf("screenshot: %w", err))
	}
	return b
}

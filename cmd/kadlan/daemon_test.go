package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
)

// syncBuffer is a bytes.Buffer the daemon's goroutines write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDaemonJSONLogsAndMetrics runs `kadlan daemon --log-format json
// --metrics 127.0.0.1:0` on loopback: every log line is a JSON object with
// time, level and msg, one of them names the metrics address, and the
// endpoint serves kadlan's and libp2p's families. With --web 127.0.0.1:0,
// `kadlan web --json` gives the page's address and token, and the page is
// there.
func TestDaemonJSONLogsAndMetrics(t *testing.T) {
	st := filepath.Join(t.TempDir(), "state")
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"kadlan", "--state", st, "daemon", "--mdns=false", "--listen", "/ip4/127.0.0.1/tcp/0", "--allow-loopback",
			"--reachability", "public", "--log-format", "json", "--metrics", "127.0.0.1:0", "--web", "127.0.0.1:0"}, io.Discard, &stderr)
	}()
	stop := sync.OnceValue(func() int { cancel(); return <-done })
	defer stop()
	var url string
	deadline := time.Now().Add(20 * time.Second)
	for url == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no metrics line in the log:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
		for _, ln := range strings.Split(stderr.String(), "\n") {
			if u, ok := strings.CutPrefix(jsonMsg(ln), "metrics on "); ok {
				url = u
			}
		}
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, fam := range []string{"# TYPE kadlan_dht_routing_table_peers gauge", "# TYPE libp2p_rcmgr_limit gauge", "# TYPE libp2p_relaysvc_status gauge"} {
		if !bytes.Contains(body, []byte(fam)) {
			t.Errorf("scrape lacks %q", fam)
		}
	}
	var out bytes.Buffer
	if code := run(ctx, []string{"kadlan", "--state", st, "web", "--json"}, &out, io.Discard); code != 0 {
		t.Fatalf("kadlan web --json exited %d", code)
	}
	var w api.Web
	if err := json.Unmarshal(out.Bytes(), &w); err != nil || !strings.HasPrefix(w.URL, "http://127.0.0.1:") || !strings.HasSuffix(w.URL, "/#token="+w.Token) {
		t.Fatalf("kadlan web --json: %q (%v)", out.String(), err)
	}
	if resp, err := http.Get(w.URL); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("Create network")) {
			t.Errorf("GET %s: %s", w.URL, resp.Status)
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("daemon exited %d: %s", code, stderr.String())
	}
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	n := 0
	for sc.Scan() {
		var v struct{ Time, Level, Msg string }
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v.Time == "" || v.Level == "" || v.Msg == "" {
			t.Errorf("log line %q is not a JSON record with time, level and msg (%v)", sc.Text(), err)
		}
		n++
	}
	if n < 3 {
		t.Errorf("only %d log lines", n)
	}
}

func jsonMsg(line string) string {
	var v struct{ Msg string }
	json.Unmarshal([]byte(line), &v)
	return v.Msg
}

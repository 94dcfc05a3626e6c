package logs

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestLevelOf(t *testing.T) {
	for msg, want := range map[string]slog.Level{
		"dht: reachability is now public":                      slog.LevelInfo,
		"networks: abc: announcing membership (will retry): x": slog.LevelWarn,
		"dht: relay: refused a reservation to x":               slog.LevelWarn,
		"overlay: read kl0: input/output error":                slog.LevelWarn,
		"dht: debug: dialled 3 addresses":                      slog.LevelDebug,
		"debug: no subsystem":                                  slog.LevelDebug,
		"networks: warn: odd":                                  slog.LevelWarn,
		"control API on /run/kadlan.sock":                      slog.LevelInfo,
	} {
		if got := LevelOf(msg); got != want {
			t.Errorf("LevelOf(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestJSON: each logf line is one JSON object with time, level and msg.
func TestJSON(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	logf := Logf(l)
	logf("dht: reachability is now %s", "public")
	logf("dht: debug: hidden at info")
	logf("networks: %s: %v (retrying every 30 s)", "abc", "boom")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (debug filtered), got %q", lines)
	}
	for i, want := range []struct{ level, msg string }{{"INFO", "dht: reachability is now public"}, {"WARN", "networks: abc: boom (retrying every 30 s)"}} {
		var v map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &v); err != nil {
			t.Fatalf("line %q: %v", lines[i], err)
		}
		if v["level"] != want.level || v["msg"] != want.msg || v["time"] == nil {
			t.Errorf("line %d = %v, want level %s msg %q", i, v, want.level, want.msg)
		}
	}
}

// TestText keeps the log.Printf look: time, level unless info, message.
func TestText(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "debug", "text")
	if err != nil {
		t.Fatal(err)
	}
	Logf(l)("kadlan %s: address %s", "dev", "12D3")
	Logf(l)("dht: debug: shown")
	l.With("peer", "a b").Warn("x", "n", 3)
	re := regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} `)
	want := []string{"kadlan dev: address 12D3", "DEBUG dht: debug: shown", `WARN x peer="a b" n=3`}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %q", lines)
	}
	for i, ln := range lines {
		if !re.MatchString(ln) || re.ReplaceAllString(ln, "") != want[i] {
			t.Errorf("line %q, want time then %q", ln, want[i])
		}
	}
}

func TestBadFlags(t *testing.T) {
	if _, err := New(nil, "loud", "text"); err == nil || !strings.Contains(err.Error(), Levels) {
		t.Errorf("bad level: %v", err)
	}
	if _, err := New(nil, "info", "xml"); err == nil || !strings.Contains(err.Error(), Formats) {
		t.Errorf("bad format: %v", err)
	}
}

func TestFloor(t *testing.T) {
	var b bytes.Buffer
	l, _ := New(&b, "debug", "json")
	lib := slog.New(Floor(l.Handler(), slog.LevelError)).With("logger", "swarm")
	lib.Warn("quiet")
	lib.Error("loud")
	if s := b.String(); strings.Contains(s, "quiet") || !strings.Contains(s, `"logger":"swarm"`) {
		t.Fatalf("got %q", s)
	}
}

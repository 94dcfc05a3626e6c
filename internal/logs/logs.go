// Package logs builds the daemon's log/slog logger from its flags
// (--log-level, --log-format) and adapts it to the printf-style logf that
// kadlan's packages take, so that call sites stay as they are.
package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Levels and Formats are the accepted flag values.
const (
	Levels  = "debug, info, warn or error"
	Formats = "text or json"
)

// ParseLevel reads debug, info, warn (warning) or error.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want %s", s, Levels)
}

// New returns a logger writing to w at level and above, as text (one
// line per record: time, the level unless info, the message, key=value
// attributes) or as JSON (slog's JSON handler: time, level, msg, attributes).
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	lv, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(&textHandler{out: &lockedWriter{w: w}, level: lv}), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})), nil
	}
	return nil, fmt.Errorf("log format %q: want %s", format, Formats)
}

// Logf adapts l to a printf-style logf. A line goes out at the level its
// words suggest (LevelOf).
func Logf(l *slog.Logger) func(format string, args ...any) {
	return func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		lv := LevelOf(msg)
		if !l.Enabled(context.Background(), lv) {
			return
		}
		l.Log(context.Background(), lv, msg)
	}
}

// warnWords mark a logf line as a warning: something failed or was refused.
var warnWords = []string{"error", "fail", "cannot", "refused", "unreadable", "retry", "not permitted", "does not answer", "no peer known"}

// LevelOf is the level of a logf line: "debug: " or "warn: " after the
// subsystem prefix (e.g. "dht: debug: ...") say it; otherwise warn when a
// word says something failed or was refused, else info.
func LevelOf(msg string) slog.Level {
	rest := msg
	if i := strings.Index(msg, ": "); i >= 0 && i < 16 && !strings.ContainsAny(msg[:i], " ") {
		rest = msg[i+2:]
	}
	for _, s := range []string{msg, rest} {
		switch {
		case strings.HasPrefix(s, "debug: "):
			return slog.LevelDebug
		case strings.HasPrefix(s, "warn: "):
			return slog.LevelWarn
		}
	}
	low := strings.ToLower(msg)
	for _, w := range warnWords {
		if strings.Contains(low, w) {
			return slog.LevelWarn
		}
	}
	return slog.LevelInfo
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(b)
}

// textHandler writes what log.Printf with LstdFlags|Lmicroseconds wrote
// before kadlan used slog, with the level in front of the message unless
// it is info.
type textHandler struct {
	out   *lockedWriter
	level slog.Level
	attrs string // preformatted " key=value" pairs of WithAttrs
	group string // key prefix of WithGroup
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	b := make([]byte, 0, 128)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = t.AppendFormat(b, "2006/01/02 15:04:05.000000 ")
	if r.Level != slog.LevelInfo {
		b = append(b, r.Level.String()...)
		b = append(b, ' ')
	}
	b = append(b, r.Message...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '\n')
	h.out.write(b)
	return nil
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	var b []byte
	for _, a := range as {
		b = appendAttr(b, h.group, a)
	}
	h2.attrs += string(b)
	return &h2
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group += name + "."
	return &h2
}

func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			b = appendAttr(b, prefix+a.Key+".", g)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, prefix...)
	b = append(b, a.Key...)
	b = append(b, '=')
	s := a.Value.String()
	if s == "" || strings.ContainsAny(s, " \t\n\"=") || !strconv.CanBackquote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// Floor passes to h only the records at min and above (and at h's own
// level): for libraries' loggers, such as libp2p's, which would otherwise
// be as verbose as kadlan's at --log-level debug.
func Floor(h slog.Handler, min slog.Level) slog.Handler { return floor{h, min} }

type floor struct {
	h   slog.Handler
	min slog.Level
}

func (f floor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f floor) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f floor) WithAttrs(as []slog.Attr) slog.Handler           { return floor{f.h.WithAttrs(as), f.min} }
func (f floor) WithGroup(name string) slog.Handler              { return floor{f.h.WithGroup(name), f.min} }

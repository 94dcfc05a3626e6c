package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"kadlan"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestIDIsStableAndJSON(t *testing.T) {
	st := filepath.Join(t.TempDir(), "state")
	code, out1, errs := runCLI(t, "--state", st, "id")
	if code != 0 {
		t.Fatalf("id: %d %s", code, errs)
	}
	code, out2, _ := runCLI(t, "--state", st, "id", "--json")
	if code != 0 {
		t.Fatal("id --json failed")
	}
	var v struct{ Address, Key string }
	if err := json.Unmarshal([]byte(out2), &v); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out1) != v.Address || len(v.Key) != 64 {
		t.Fatalf("id %q vs json %+v", out1, v)
	}
}

func TestUnreachableDaemonIsOneLine(t *testing.T) {
	st := t.TempDir()
	for _, args := range [][]string{{"status"}, {"peers", "--json"}, {"ping", "12D3KooWGzMSTpC4A1A2dq6JjrEdK3pUH4kLEz3Lz6bREDU3nZuC", "-c", "2"}} {
		code, out, errs := runCLI(t, append([]string{"--state", st}, args...)...)
		if code == 0 || out != "" {
			t.Fatalf("%v: code %d, stdout %q", args, code, out)
		}
		if strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "cannot reach the kadlan daemon") {
			t.Fatalf("%v: stderr %q, want one line saying the daemon is unreachable", args, errs)
		}
	}
}

func TestFlagsAfterArgumentsAndUsageErrors(t *testing.T) {
	st := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ping"}, "usage: kadlan ping ADDRESS"},
		{[]string{"ping", "x", "-c"}, "flag -c needs a value"},
		{[]string{"ping", "x", "--nope"}, "unknown flag --nope"},
		{[]string{"ping", "x", "-c", "0"}, "--count must be between 1 and 10000"},
		{[]string{"find", "a", "b"}, "usage: kadlan find ADDRESS"},
		{[]string{"daemon", "extra"}, "daemon takes no arguments"},
		{[]string{"daemon", "--bootstrap", "/ip4/1.2.3.4/tcp/1"}, "lacks /p2p/"},
		{[]string{"daemon", "--log-level", "loud"}, "want debug, info, warn or error"},
		{[]string{"daemon", "--log-format", "xml"}, "want text or json"},
		{[]string{"daemon", "--metrics", ":9464"}, "give the host: 127.0.0.1:9464"},
		{[]string{"daemon", "--metrics", "localhost"}, "want HOST:PORT"},
	} {
		code, _, errs := runCLI(t, append([]string{"--state", st}, tc.args...)...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: code %d, stderr %q; want %q", tc.args, code, errs, tc.want)
		}
		if strings.Contains(errs, "goroutine ") {
			t.Errorf("%v: stack trace on a user error", tc.args)
		}
	}
}

func TestPrintableEscapesTerminalControls(t *testing.T) {
	for in, want := range map[string]string{
		"lan party":           "lan party",
		"café":                "café",
		"\x1b[2J\x1b]0;pwn\a": `\x1b[2J\x1b]0;pwn\x07`,
		"a\nb\tc":             `a\x0ab\x09c`,
		"evil\u202etxt.exe":   `evil\u202etxt.exe`,
		"bad\xffutf8":         `bad\ufffdutf8`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBashCompletion runs the generated script in bash: commands,
// subcommands and each command's flags complete.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var out bytes.Buffer
	if err := newApp(&out, io.Discard).Run([]string{"kadlan", "completion", "bash"}); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "kadlan.bash")
	os.WriteFile(script, out.Bytes(), 0o600)
	for line, want := range map[string]string{
		"kadlan ne":               "net networks",
		"kadlan net ":             "create authorize invite revoke",
		"kadlan net create --na":  "--name",
		"kadlan daemon --relay-c": "--relay-circuits --relay-circuits-stranger --relay-circuit-duration --relay-circuit-mib",
		"kadlan --st":             "--state",
		"kadlan daemon --log-":    "--log-level --log-format",
		"kadlan daemon --met":     "--metrics",
	} {
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		q := make([]string, len(words))
		for i, w := range words {
			q[i] = fmt.Sprintf("%q", w)
		}
		cmd := exec.Command(bash, "-c", fmt.Sprintf(`source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _kadlan; echo "${COMPREPLY[*]}"`,
			script, strings.Join(q, " "), len(words)-1))
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if strings.TrimSpace(string(got)) != want {
			t.Errorf("%q completes to %q, want %q", line, strings.TrimSpace(string(got)), want)
		}
	}
}

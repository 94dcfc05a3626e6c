package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// chromiumPath is Debian's chromium (.ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

// browserIn starts a headless Chromium inside host h's namespace and
// returns a chromedp context for it; the test's cleanup closes it.
//
// chromedp talks to the browser over a pipe (--remote-debugging-pipe,
// file descriptors 3 and 4), not a port: the pipe crosses the namespace
// boundary, so the test, in the host's namespace, drives a browser whose
// every socket is in the lab. chromedp starts `ip netns exec NS chromium
// ...` (ip execs chromium, so the PID chromedp kills is the browser's). In
// the lab namespace the only routes are the lab's own (no default route
// out of the lab), and as a second fence the browser gets a dead proxy for
// everything but loopback and a resolver that resolves nothing.
func browserIn(t *testing.T, h *labtest.Host) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s not installed (apt-get install chromium; .ci/run installs it)", chromiumPath)
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip not installed")
	}
	if !strings.HasPrefix(h.NS, h.Lab.Prefix) {
		t.Fatalf("refusing to start a browser outside the lab (%q)", h.NS)
	}
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "chromium")
	outPath := filepath.Join(tmp, "chromium.log")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	output := func() string { b, _ := os.ReadFile(outPath); return string(b) }
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("proxy-server", "http://127.0.0.1:9"), // loopback bypasses it; nothing else gets out
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(dataDir),
		chromedp.CombinedOutput(out),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.Path = ipPath
			cmd.Args = append([]string{"ip", "netns", "exec", h.NS, chromiumPath}, cmd.Args[1:]...)
			// The browser dies with the test process.
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		acancel() // waits for the browser process to exit
		// Chromium's helpers (zygote, renderers) normally exit with it;
		// any left are ours: they carry this test's user data dir.
		if n := killUsing(dataDir); n > 0 {
			t.Logf("killed %d chromium helpers left behind", n)
		}
		if t.Failed() {
			t.Logf("--- chromium output:\n%s", tail(output(), 30))
		}
		out.Close()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium in %s: %v\n%s", h.NS, err, tail(output(), 30))
	}
	return ctx
}

// killUsing kills the processes started with --user-data-dir=dir (a
// directory of this test's, so only processes it started) and reports
// how many.
func killUsing(dir string) int {
	want := []byte("--user-data-dir=" + dir)
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				syscall.Kill(pid, syscall.SIGKILL)
				n++
				break
			}
		}
	}
	return n
}

// tail is the last lines of the browser's output, without its complaints
// about the D-Bus that a test machine does not run.
func tail(s string, lines int) string {
	var l []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.Contains(line, "dbus") {
			l = append(l, line)
		}
	}
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// domText is the text of the first element matching sel ("" if none).
func domText(ctx context.Context, sel string) (string, error) {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? (e.tagName === "TEXTAREA" ? e.value : e.textContent) : ""; })()`, sel)
	return chromedp.Run(ctx, chromedp.Evaluate[string](js))
}

// waitDOM polls the page until the text of sel satisfies ok.
func waitDOM(t *testing.T, ctx context.Context, timeout time.Duration, sel, what string, ok func(string) bool) string {
	t.Helper()
	var got string
	err := netlab.Eventually(timeout, 200*time.Millisecond, func() error {
		var err error
		if got, err = domText(ctx, sel); err != nil {
			return err
		}
		if !ok(got) {
			return fmt.Errorf("%s: %q, want %s", sel, got, what)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the page: %v", err)
	}
	return got
}

// discard makes an action with a value one of chromedp.Do's steps.
func discard[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

func is(want string) func(string) bool { return func(s string) bool { return s == want } }

// TestWebPage (issue 15): the owner's daemon serves its page (--web) in
// its namespace, where a headless Chromium opens the address `kadlan web`
// prints. In the page, the owner creates a private network; a second node
// joins it and shows up as pending; a click on Authorize makes it ok, on
// the page and for the member itself. Invite shows a token and its QR
// code, the peers list the member with a direct path and an RTT, and
// Revoke revokes.
func TestWebPage(t *testing.T) {
	lab := labtest.New(t)
	owner := lab.PublicHost("owner").StartNode(t, "--web", "127.0.0.1:9443")
	member := lab.PublicHost("member").StartNode(t, "--bootstrap", owner.BootstrapAddr())
	var w api.Web
	if err := owner.JSON(&w, "web"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.URL, "http://127.0.0.1:9443/#token=") || len(w.Token) != 64 {
		t.Fatalf("kadlan web: %+v", w)
	}
	ctx := browserIn(t, owner.Host)
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(w.URL), chromedp.WaitVisible(chromedp.ID("app"))); err != nil {
		t.Fatalf("opening %s: %v", w.URL, err)
	}
	waitDOM(t, ctx, 20*time.Second, "#node-address", "the owner's address", is(owner.Address))
	if loc, _ := domText(ctx, "#conn"); !strings.HasPrefix(loc, "updated") {
		t.Errorf("connection line %q", loc)
	}
	if href, err := chromedp.Run(ctx, chromedp.Location()); err != nil || strings.Contains(href, "token") {
		t.Errorf("the token stayed in the address bar: %q (%v)", href, err)
	}

	// Create network.
	err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("create-name"), "webnet"),
		chromedp.SetValue(chromedp.ID("create-ipv4"), "10.97.0.0/24"),
		chromedp.Click(chromedp.ID("create-button")),
	)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	if err := netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		var err error
		if id, err = chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(".network") || {dataset: {}}).dataset.network || ""`)); err != nil {
			return err
		}
		if id == "" {
			return fmt.Errorf("no network on the page")
		}
		return nil
	}); err != nil {
		t.Fatalf("after Create network: %v", err)
	}
	x, err := network(owner, id)
	if err != nil || x.Name != "webnet" || !x.Private || !x.IsOwner {
		t.Fatalf("the CLI sees the page's network as %+v (%v)", x, err)
	}
	t.Logf("created %s in the page", id)

	// A member joins and is pending; Authorize makes it ok.
	if _, err := member.CLI("join", id); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`.network[data-network=%q] tr[data-address=%q]`, id, member.Address)
	waitDOM(t, ctx, lanBound, row+" .status", "pending", is("pending"))
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+" button.authorize"))); err != nil {
		t.Fatalf("clicking Authorize: %v", err)
	}
	waitDOM(t, ctx, lanBound, row+" .status", "ok", is("ok"))
	if ms, err := memberStatus(owner, id, member.Address); err != nil || ms.Status != "ok" {
		t.Errorf("the CLI sees the member as %+v (%v)", ms, err)
	}
	waitNet(t, member, id, "ok", 1)
	waitDOM(t, ctx, lanBound, row+" .link", "a link", is("up"))

	// Invite: the token and its QR code.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`.network[data-network=%q] button.invite-button`, id)))); err != nil {
		t.Fatal(err)
	}
	waitDOM(t, ctx, 20*time.Second, ".invite-token", "an invite token", func(s string) bool { return strings.HasPrefix(s, "kadlan1-") })
	if err := netlab.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		qrWidth, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(document.querySelector("img.invite-qr") || {}).naturalWidth || 0`))
		if err != nil {
			return err
		}
		if qrWidth == 0 {
			return fmt.Errorf("no QR code image loaded")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// Peers: the member, direct, with an RTT.
	peer := fmt.Sprintf(`#peer-rows tr[data-address=%q]`, member.Address)
	waitDOM(t, ctx, 30*time.Second, peer+" .path", "direct", is("direct"))
	waitDOM(t, ctx, 30*time.Second, peer+" .rtt", "an RTT", func(s string) bool { return strings.HasSuffix(s, " ms") })

	// Traffic chart: the in/out legend moves with the network's counters.
	waitDOM(t, ctx, 20*time.Second, fmt.Sprintf(`.network[data-network=%q] .legend .in`, id), "a rate", func(s string) bool { return strings.HasPrefix(s, "in ") })

	if p := os.Getenv("KADLAN_WEB_SCREENSHOT"); p != "" {
		// A picture of the page for a reviewer (PNG).
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(p, png, 0o644)
		}
		t.Logf("screenshot %s: %v", p, err)
	}

	// Revoke (confirm() answered yes).
	if err := chromedp.Do(ctx,
		discard(chromedp.Evaluate[bool](`window.confirm = () => true, true`)),
		chromedp.Click(chromedp.CSS(row+" button.revoke"))); err != nil {
		t.Fatalf("clicking Revoke: %v", err)
	}
	waitDOM(t, ctx, lanBound, row+" .status", "revoked", is("revoked"))

	// A wrong token gets the sign-in form, not the node.
	if err := chromedp.Do(ctx,
		discard(chromedp.Evaluate[bool](`sessionStorage.clear(), true`)),
		chromedp.Navigate("about:blank"),
		chromedp.Navigate("http://127.0.0.1:9443/#token="+strings.Repeat("0", 64)),
		chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("wrong token: %v", err)
	}
	waitDOM(t, ctx, 10*time.Second, "#login-error", "a refusal", func(s string) bool { return strings.Contains(s, "not this node") })
}

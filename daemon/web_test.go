package daemon

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/daemon/web"
)

// TestWebPage: with --web the daemon serves the page and, under /api/,
// the control API the CLI uses, behind the token of STATE/web-token.secret,
// which GET /v1/web hands to `kadlan web`; a network created through the
// page is the daemon's.
func TestWebPage(t *testing.T) {
	testConfigs[t] = func(c *Config) { c.Web = "127.0.0.1:0" }
	td := startDaemon(t)
	var info *api.Web
	td.call(t, "GET", "/v1/web", nil, &info)
	if info == nil || info.Addr != td.d.WebAddr() || !strings.HasSuffix(info.URL, "/#token="+info.Token) {
		t.Fatalf("GET /v1/web: %+v (listening on %s)", info, td.d.WebAddr())
	}
	tokFile := filepath.Join(td.d.cfg.StateDir, web.TokenFile)
	b, err := os.ReadFile(tokFile)
	if err != nil || strings.TrimSpace(string(b)) != info.Token {
		t.Fatalf("token file %q, %v; want the token the API gave", b, err)
	}
	if fi, _ := os.Stat(tokFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode().Perm())
	}
	base := "http://" + info.Addr
	get := func(path, tok string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	if resp, body := get("/", ""); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Create network") {
		t.Fatalf("GET /: %s", resp.Status)
	}
	if resp, _ := get("/api/v1/status", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status without token: %s", resp.Status)
	}
	resp, body := get("/api/v1/status", info.Token)
	var st api.Status
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &st) != nil || st.Address != td.d.Node.ID().String() {
		t.Fatalf("status through the page: %s %s", resp.Status, body)
	}
	// A state-changing call through the page is the daemon's own.
	req, _ := http.NewRequest("POST", base+"/api/v1/networks/create", strings.NewReader(`{"name":"webnet","private":true}`))
	req.Header.Set("Authorization", "Bearer "+info.Token)
	req.Header.Set("Origin", base)
	cr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created api.NetworkCreated
	json.NewDecoder(cr.Body).Decode(&created)
	cr.Body.Close()
	if cr.StatusCode != http.StatusOK || created.Name != "webnet" {
		t.Fatalf("create through the page: %s %+v", cr.Status, created)
	}
	// Its device comes up on the network's own goroutine, and with it the
	// traffic counters.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n, ok := td.network(t, created.Network)
		if ok && n.IsOwner && n.Traffic != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the socket API does not show the page's network as owned, with traffic: %+v", n)
		}
	}
}

// TestWebAddrErrors: a bad or busy --web address stops the daemon before
// anything starts, with an error that names it.
func TestWebAddrErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addrErrors(t, "--web", func(c *Config, addr string) { c.Web = addr }, map[string]string{
		":9443":              "give the host",
		"0.0.0.0:9443":       "--web-insecure-remote",
		"example.com:9443":   "IP address or localhost",
		busy.Addr().String(): busy.Addr().String() + ": listen tcp " + busy.Addr().String() + ": bind: address already in use",
	})
}

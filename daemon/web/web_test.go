package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", TokenFile)
	tok, err := LoadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if !validToken(tok) {
		t.Fatalf("token %q is not 64 hex digits", tok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	// A restart reads the same token.
	again, err := LoadOrCreateToken(path)
	if err != nil || again != tok {
		t.Fatalf("second load: %q, %v; want %q", again, err, tok)
	}
	// A file others may read is narrowed.
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateToken(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after load %v, want 0600", fi.Mode().Perm())
	}
	// Damage is reported, not replaced silently.
	os.WriteFile(path, []byte("not a token\n"), 0o600)
	if _, err := LoadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged file: %v", err)
	}
	// Two state dirs never share a token.
	other, err := LoadOrCreateToken(filepath.Join(t.TempDir(), TokenFile))
	if err != nil || other == tok {
		t.Fatalf("second state dir: %q, %v", other, err)
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr     string
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:9443", false, true},
		{"[::1]:9443", false, true},
		{"localhost:9443", false, true},
		{"127.0.0.1:0", false, true},
		{":9443", false, false},
		{"0.0.0.0:9443", false, false},
		{"0.0.0.0:9443", true, true},
		{"192.168.1.5:9443", false, false},
		{"192.168.1.5:9443", true, true},
		{"example.com:9443", true, false},
		{"127.0.0.1", false, false},
		{"127.0.0.1:99999", false, false},
	}
	for _, tt := range tests {
		err := CheckAddr(tt.addr, tt.insecure)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddr(%q, %v) = %v, want ok %v", tt.addr, tt.insecure, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), tt.addr) {
			t.Errorf("CheckAddr(%q): error %q does not name the address", tt.addr, err)
		}
	}
}

func TestURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:9443": "http://127.0.0.1:9443/#token=ab",
		"0.0.0.0:9443":   "http://127.0.0.1:9443/#token=ab",
		"[::]:9443":      "http://[::1]:9443/#token=ab",
		"[::1]:9443":     "http://[::1]:9443/#token=ab",
	} {
		if got := URL(addr, "ab"); got != want {
			t.Errorf("URL(%q) = %q, want %q", addr, got, want)
		}
	}
}

const testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// fakeAPI records the paths it was asked for and echoes the body length.
type fakeAPI struct{ paths []string }

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	json.NewEncoder(w).Encode(map[string]int{"body": len(b)})
}

func newTest(addr string) (http.Handler, *fakeAPI) {
	f := &fakeAPI{}
	return New(Config{API: f, Token: testToken, Addr: addr}), f
}

func do(h http.Handler, method, host, path string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://"+host+path, strings.NewReader(body))
	r.Host = host
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var bearer = map[string]string{"Authorization": "Bearer " + testToken}

func TestAuth(t *testing.T) {
	h, f := newTest("127.0.0.1:9443")
	const host = "127.0.0.1:9443"
	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}, http.StatusUnauthorized},
		{"short token", map[string]string{"Authorization": "Bearer 0011"}, http.StatusUnauthorized},
		{"not bearer", map[string]string{"Authorization": "Basic " + testToken}, http.StatusUnauthorized},
		{"cookie is not enough", map[string]string{"Cookie": "token=" + testToken}, http.StatusUnauthorized},
		{"right token", bearer, http.StatusOK},
	}
	for _, tt := range tests {
		w := do(h, "GET", host, "/api/v1/status", tt.hdr, "")
		if w.Code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
		if w.Code == http.StatusUnauthorized && !strings.Contains(w.Body.String(), "kadlan web") {
			t.Errorf("%s: 401 does not say where the token is: %s", tt.name, w.Body)
		}
	}
	if len(f.paths) != 1 || f.paths[0] != "GET /v1/status" {
		t.Fatalf("the API saw %v, want exactly the authorized GET /v1/status", f.paths)
	}
	// The API is proxied as it is: method, path and body.
	w := do(h, "POST", host, "/api/v1/networks/create", bearer, `{"name":"x"}`)
	if w.Code != http.StatusOK || f.paths[1] != "POST /v1/networks/create" || !strings.Contains(w.Body.String(), `"body":12`) {
		t.Fatalf("POST proxied as %v: %d %s", f.paths, w.Code, w.Body)
	}
	// Only /api/v1/ reaches the API.
	if w := do(h, "GET", host, "/api/../v1/status", bearer, ""); len(f.paths) != 2 {
		t.Fatalf("/api/../v1/status reached the API (%d): %v", w.Code, f.paths)
	}
	// Bodies are bounded.
	w = do(h, "POST", host, "/api/v1/networks/create", bearer, strings.Repeat("x", MaxBody+1))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over MaxBody: %d %s", w.Code, w.Body)
	}
}

func TestHostAndOrigin(t *testing.T) {
	h, f := newTest("127.0.0.1:9443")
	tests := []struct {
		name string
		host string
		hdr  map[string]string
		want int
	}{
		{"listen address", "127.0.0.1:9443", nil, http.StatusOK},
		{"localhost", "localhost:9443", nil, http.StatusOK},
		{"other loopback", "[::1]:9443", nil, http.StatusOK},
		{"rebound name", "evil.example:9443", nil, http.StatusForbidden},
		{"name without port", "evil.example", nil, http.StatusForbidden},
		{"other port", "127.0.0.1:8080", nil, http.StatusForbidden},
		{"LAN address on a loopback listener", "192.168.1.5:9443", nil, http.StatusForbidden},
		{"same origin", "127.0.0.1:9443", map[string]string{"Origin": "http://127.0.0.1:9443"}, http.StatusOK},
		{"foreign origin", "127.0.0.1:9443", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"other local port", "127.0.0.1:9443", map[string]string{"Origin": "http://127.0.0.1:8080"}, http.StatusForbidden},
		{"null origin", "127.0.0.1:9443", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"cross-site fetch", "127.0.0.1:9443", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		hdr := map[string]string{"Authorization": bearer["Authorization"]}
		for k, v := range tt.hdr {
			hdr[k] = v
		}
		n := len(f.paths)
		w := do(h, "POST", tt.host, "/api/v1/networks/authorize", hdr, "{}")
		if w.Code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
		if tt.want == http.StatusForbidden && len(f.paths) != n {
			t.Errorf("%s: refused, but the API saw it", tt.name)
		}
		// The page itself is refused the same way.
		if w := do(h, "GET", tt.host, "/", tt.hdr, ""); w.Code != tt.want {
			t.Errorf("%s: page %d, want %d", tt.name, w.Code, tt.want)
		}
	}
	// With --web-insecure-remote on 0.0.0.0, an IP address is fine, a name
	// still not.
	h, _ = newTest("0.0.0.0:9443")
	if w := do(h, "GET", "192.168.1.5:9443", "/api/v1/status", bearer, ""); w.Code != http.StatusOK {
		t.Errorf("LAN address on 0.0.0.0: %d", w.Code)
	}
	if w := do(h, "GET", "evil.example:9443", "/api/v1/status", bearer, ""); w.Code != http.StatusForbidden {
		t.Errorf("name on 0.0.0.0: %d", w.Code)
	}
}

func TestPageAndAssets(t *testing.T) {
	h, _ := newTest("127.0.0.1:9443")
	for path, want := range map[string][]string{
		"/":                 {"text/html", "Create network", "/static/app.js"},
		"/static/app.js":    {"javascript", "/v1/networks/authorize", "Bearer"},
		"/static/style.css": {"text/css", ".network"},
	} {
		w := do(h, "GET", "127.0.0.1:9443", path, nil, "")
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", path, w.Code)
			continue
		}
		if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, want[0]) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, want[0])
		}
		for _, s := range want[1:] {
			if !strings.Contains(w.Body.String(), s) {
				t.Errorf("GET %s: no %q", path, s)
			}
		}
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	// Nothing external: no URL to another host in the page's files.
	for _, name := range []string{"static/index.html", "static/app.js", "static/style.css"} {
		b, _ := static.ReadFile(name)
		if strings.Contains(string(b), "https://") || strings.Contains(string(b), "//cdn") {
			t.Errorf("%s refers to an external resource", name)
		}
	}
	if w := do(h, "GET", "127.0.0.1:9443", "/nope", nil, ""); w.Code != http.StatusNotFound {
		t.Errorf("GET /nope: %d", w.Code)
	}
}

func TestQR(t *testing.T) {
	h, _ := newTest("127.0.0.1:9443")
	if w := do(h, "POST", "127.0.0.1:9443", "/qr", nil, "kadlan1-abc"); w.Code != http.StatusUnauthorized {
		t.Fatalf("QR without token: %d", w.Code)
	}
	w := do(h, "POST", "127.0.0.1:9443", "/qr", bearer, "kadlan1-"+strings.Repeat("A", 550))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("QR: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if b := w.Body.String(); !strings.HasPrefix(b, "<svg") || !strings.Contains(b, `<path fill="#000" d="M`) {
		t.Fatalf("QR is not an SVG with modules: %.200s", b)
	}
	if w := do(h, "POST", "127.0.0.1:9443", "/qr", bearer, strings.Repeat("A", maxQRText+1)); w.Code != http.StatusBadRequest {
		t.Fatalf("QR of too much text: %d", w.Code)
	}
}

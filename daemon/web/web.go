// Package web is the daemon's local page for owners and members (kadlan
// daemon --web): a handler that serves the page (embedded, no external
// assets) and, under /api/, the daemon's control API itself, the one the
// CLI talks to on its Unix socket, behind a bearer token.
//
// Security model: the token (TokenFile in the state dir, 0600) is sent in
// an Authorization: Bearer header only, never in a cookie: cookies are not
// scoped by port, so one would also go to every other web server on
// 127.0.0.1. The page keeps it in sessionStorage, which is per origin
// (scheme, host and port). A Host that is not an IP address or localhost
// (DNS rebinding), or an Origin other than the page's own (CSRF, another
// local page), is refused before the token is even looked at.
package web

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/internal/hostport"
)

//go:embed static
var static embed.FS

// MaxBody bounds every request body the page's listener reads.
const MaxBody = 1 << 20

// maxQRText bounds what POST /qr renders (an invite is about 550 bytes).
const maxQRText = 2048

// Config is what the handler serves.
type Config struct {
	// API is the daemon's control API (its routes under /v1/); the page
	// reaches it as /api/v1/... . It must not be nil.
	API http.Handler
	// Token is the bearer token every /api/ request must carry.
	Token string
	// Addr is the address the listener is bound to (HOST:PORT, the port
	// resolved): Host headers must name this port.
	Addr string
}

// CheckAddr accepts HOST:PORT for --web where HOST is an IP address or
// localhost, and a loopback one unless insecureRemote: the page is plain
// HTTP, so on any other interface its token crosses the network in the
// clear.
func CheckAddr(addr string, insecureRemote bool) error {
	host, port, err := hostport.Split("--web", addr, "127.0.0.1:9443")
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("--web %q: give the host, such as 127.0.0.1:%s (this machine only)", addr, port)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("--web %q: the host must be an IP address or localhost", addr)
	}
	if !ip.IsLoopback() && !insecureRemote {
		return fmt.Errorf("--web %q is not a loopback address: the page is plain HTTP and its token would cross the network in the clear; listen on 127.0.0.1 (reach it with ssh -L), or add --web-insecure-remote to serve it there anyway", addr)
	}
	return nil
}

// URL is the page's address for a listener bound to addr (an unspecified
// host becomes the loopback address), with the token in the fragment,
// which browsers never send to the server.
func URL(addr, token string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.Is6() {
			host = "::1"
		}
	}
	u := "http://" + net.JoinHostPort(host, port) + "/"
	if token != "" {
		u += "#token=" + token
	}
	return u
}

type handler struct {
	cfg  Config
	port string
	// loopback: the listener is on a loopback address, so Host must be
	// localhost or a loopback IP.
	loopback bool
	mux      *http.ServeMux
}

// New returns the page's handler.
func New(cfg Config) http.Handler {
	h := &handler{cfg: cfg, mux: http.NewServeMux()}
	host, port, _ := net.SplitHostPort(cfg.Addr)
	h.port = port
	ip, err := netip.ParseAddr(host)
	h.loopback = host == "localhost" || (err == nil && ip.IsLoopback())
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	h.mux.Handle("GET /{$}", files)
	h.mux.Handle("GET /static/", http.StripPrefix("/static", files))
	h.mux.Handle("/api/v1/", h.auth(http.StripPrefix("/api", cfg.API)))
	h.mux.Handle("POST /qr", h.auth(http.HandlerFunc(serveQR)))
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	if err := h.checkOrigin(r); err != nil {
		writeErr(w, http.StatusForbidden, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	h.mux.ServeHTTP(w, r)
}

// checkOrigin refuses a request whose Host is not this listener (DNS
// rebinding: a name the attacker controls, resolved to 127.0.0.1) or that
// a page of another origin sent (CSRF).
func (h *handler) checkOrigin(r *http.Request) error {
	if !h.hostOK(r.Host) {
		return fmt.Errorf("kadlan web: refusing Host %q: open the page as http://%s/ (run kadlan web)", r.Host, net.JoinHostPort("127.0.0.1", h.port))
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "http" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Errorf("kadlan web: refusing a request from another origin (%q)", o)
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errors.New("kadlan web: refusing a cross-site request")
	}
	return nil
}

func (h *handler) hostOK(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port != h.port {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return false // a name: maybe the attacker's, rebound to us
	}
	return !h.loopback || ip.IsLoopback()
}

// auth lets a request through only with the token in an Authorization:
// Bearer header (compared in constant time).
func (h *handler) auth(next http.Handler) http.Handler {
	want := []byte(h.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kadlan"`)
			writeErr(w, http.StatusUnauthorized, errors.New("missing or wrong token: `kadlan web` prints the page's address with it"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveQR answers the body (text, such as an invite token) as an SVG QR
// code, drawn here so that the page loads nothing from anywhere else.
func serveQR(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxQRText+1))
	if err != nil || len(b) == 0 || len(b) > maxQRText {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("want 1 to %d bytes of text to encode", maxQRText))
		return
	}
	svg, err := QRSVG(string(b))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	io.WriteString(w, svg)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
}

// Timeouts of the page's HTTP server (see daemon): a slow or idle client
// cannot hold a connection for long.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 2 * time.Minute // a find or ping through the API may take a while
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 32 << 10
)

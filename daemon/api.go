package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/daemon/web"
	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/peer"
)

// statusError gives an error its HTTP status; any other error is a 400.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func withStatus(code int, err error) error {
	if err == nil {
		return nil
	}
	return &statusError{code, err}
}

// get registers a GET route that answers f's result as JSON.
func (d *Daemon) get(pattern string, f func(r *http.Request) any) {
	d.Handle("GET "+pattern, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, f(r)) })
}

// post registers a POST route whose JSON body decodes into T (unknown
// fields refused) and whose result or error f returns.
func post[T any](d *Daemon, pattern string, f func(ctx context.Context, req T) (any, error)) {
	d.Handle("POST "+pattern, func(w http.ResponseWriter, r *http.Request) {
		var req T
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, errors.New("bad request body: "+err.Error()))
			return
		}
		res, err := f(r.Context(), req)
		if err != nil {
			code := http.StatusBadRequest
			var se *statusError
			if errors.As(err, &se) {
				code = se.code
			}
			writeErr(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

func (d *Daemon) routes() {
	d.get("/v1/status", func(*http.Request) any {
		st := apiStatus(d.Node.Status(), d.Node.RelayStatus(), d.Node.ConnLimits())
		st.Bootstrap = d.Boot.State()
		return st
	})
	d.get("/v1/peers", func(*http.Request) any { return apiPeers(d.Node.Peers()) })
	d.get("/v1/peers/export", func(*http.Request) any {
		return map[string]any{"addrs": nonNil(d.Node.ShareableAddrs())}
	})
	post(d, "/v1/find", func(ctx context.Context, req api.FindRequest) (any, error) {
		id, err := d.Node.ResolvePeer(req.Address)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout(req.TimeoutMs, 30*time.Second))
		defer cancel()
		res, err := d.Node.Find(ctx, id)
		if errors.Is(err, dht.ErrNotFound) {
			return nil, withStatus(http.StatusNotFound, err)
		}
		return apiFind(res), withStatus(http.StatusBadGateway, err)
	})
	post(d, "/v1/ping", func(ctx context.Context, req api.PingRequest) (any, error) {
		if req.Count < 0 || req.Count > 10000 {
			return nil, errors.New("count must be between 1 and 10000")
		}
		id, err := d.Node.ResolvePeer(req.Address)
		if err != nil {
			return nil, err
		}
		interval := time.Duration(req.IntervalMs) * time.Millisecond
		if interval <= 0 {
			interval = time.Second
		}
		ctx, cancel := context.WithTimeout(ctx, timeout(req.TimeoutMs, 30*time.Second+time.Duration(req.Count)*interval))
		defer cancel()
		res, err := d.Node.Ping(ctx, id, req.Count, interval)
		return apiPing(res), withStatus(http.StatusBadGateway, err)
	})
	d.get("/v1/web", func(*http.Request) any { return d.webInfo() })
	d.netRoutes()
}

func (d *Daemon) netRoutes() {
	d.get("/v1/networks", func(*http.Request) any { return d.nets.list() })
	post(d, "/v1/networks/create", func(ctx context.Context, req api.NetworkCreateRequest) (any, error) {
		return d.nets.create(ctx, req)
	})
	post(d, "/v1/networks/join", func(ctx context.Context, req api.NetworkRequest) (any, error) {
		if req.Token != "" || netrec.LooksLikeToken(req.Network) {
			tok := req.Token
			if tok == "" {
				tok = req.Network
			}
			id, err := d.joinToken(tok)
			if err != nil {
				return nil, err
			}
			return map[string]string{"network": id.String()}, nil
		}
		id, err := netrec.ParseNetworkID(strings.TrimSpace(req.Network))
		if err != nil {
			return nil, fmt.Errorf("%q is not a network ID: %w", req.Network, err)
		}
		if err := d.nets.join(id); err != nil {
			return nil, withStatus(http.StatusInternalServerError, err)
		}
		return map[string]string{"network": id.String()}, nil
	})
	post(d, "/v1/networks/leave", func(ctx context.Context, req api.NetworkRequest) (any, error) {
		j, err := d.nets.resolve(req.Network)
		if err != nil {
			if id, ok, rerr := d.nets.leaveBroken(req.Network); ok {
				if rerr != nil {
					return nil, withStatus(http.StatusInternalServerError, rerr)
				}
				return map[string]string{"network": id}, nil
			}
			return nil, withStatus(http.StatusNotFound, err)
		}
		if err := d.nets.leave(j); err != nil {
			return nil, withStatus(http.StatusInternalServerError, err)
		}
		return map[string]string{"network": j.m.ID.String()}, nil
	})
	post(d, "/v1/networks/members", func(ctx context.Context, req api.NetworkRequest) (any, error) {
		j, err := d.nets.resolve(req.Network)
		if err != nil {
			return nil, withStatus(http.StatusNotFound, err)
		}
		return j.info(), nil
	})
	post(d, "/v1/networks/authorize", func(ctx context.Context, req api.NetworkRequest) (any, error) {
		j, member, err := d.netMember(req)
		if err != nil {
			return nil, err
		}
		var ip netip.Addr
		if req.IPv4 != "" {
			if ip, err = netip.ParseAddr(req.IPv4); err != nil || !ip.Is4() {
				return nil, fmt.Errorf("--ipv4 %q is not an IPv4 address", req.IPv4)
			}
		}
		var expires time.Time
		if req.ExpiresS > 0 {
			expires = time.Now().Add(time.Duration(req.ExpiresS) * time.Second)
		}
		if req.Name != "" {
			if err := netrec.ValidName(req.Name); err != nil {
				return nil, fmt.Errorf("--name: %w", err)
			}
		}
		if err := d.nets.authorize(ctx, j, member, ip, req.Name, expires); err != nil {
			return nil, err
		}
		return map[string]string{"network": j.m.ID.String(), "address": member.String()}, nil
	})
	post(d, "/v1/networks/invite", func(ctx context.Context, req api.InviteRequest) (any, error) {
		j, err := d.nets.resolve(req.Network)
		if err != nil {
			return nil, withStatus(http.StatusNotFound, err)
		}
		if req.ExpiresS < 0 || req.Uses < 0 {
			return nil, errors.New("expiry and uses must be positive")
		}
		return d.nets.invite(j, time.Duration(req.ExpiresS)*time.Second, req.Uses)
	})
	post(d, "/v1/networks/revoke", func(ctx context.Context, req api.NetworkRequest) (any, error) {
		j, member, err := d.netMember(req)
		if err != nil {
			return nil, err
		}
		if err := d.nets.revoke(ctx, j, member); err != nil {
			return nil, err
		}
		return map[string]string{"network": j.m.ID.String(), "address": member.String()}, nil
	})
}

// webInfo is where the page is served, with its token; nil (JSON null)
// when --web is off.
func (d *Daemon) webInfo() *api.Web {
	if d.web == nil {
		return nil
	}
	return &api.Web{URL: web.URL(d.web.addr(), d.webToken), Addr: d.web.addr(), Token: d.webToken}
}

func (d *Daemon) netMember(req api.NetworkRequest) (*joined, peer.ID, error) {
	j, err := d.nets.resolve(req.Network)
	if err != nil {
		return nil, "", withStatus(http.StatusNotFound, err)
	}
	member, err := d.Node.ResolvePeer(req.Address)
	if err != nil {
		return nil, "", err
	}
	return j, member, nil
}

func timeout(msec int, def time.Duration) time.Duration {
	if msec > 0 {
		return time.Duration(msec) * time.Millisecond
	}
	return def
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}

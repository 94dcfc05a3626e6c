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
	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/overlay"
	"github.com/libp2p/go-libp2p/core/peer"
)

func (d *Daemon) routes() {
	d.netRoutes()
	d.Handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := d.Node.Status()
		st.Bootstrap = d.Boot.State()
		writeJSON(w, http.StatusOK, st)
	})
	d.Handle("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		ps := d.Node.Peers()
		if ps == nil {
			ps = []api.Peer{}
		}
		writeJSON(w, http.StatusOK, ps)
	})
	d.Handle("GET /v1/peers/export", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"addrs": nonNil(d.Node.ShareableAddrs())})
	})
	d.Handle("POST /v1/find", func(w http.ResponseWriter, r *http.Request) {
		var req api.FindRequest
		if !readJSON(w, r, &req) {
			return
		}
		id, err := d.Node.ResolvePeer(req.Address)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout(req.TimeoutMs, 30*time.Second))
		defer cancel()
		res, err := d.Node.Find(ctx, id)
		if err != nil {
			code := http.StatusBadGateway
			if errors.Is(err, dht.ErrNotFound) {
				code = http.StatusNotFound
			}
			writeErr(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	d.Handle("POST /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		var req api.PingRequest
		if !readJSON(w, r, &req) {
			return
		}
		if req.Count < 0 || req.Count > 10000 {
			writeErr(w, http.StatusBadRequest, errors.New("count must be between 1 and 10000"))
			return
		}
		id, err := d.Node.ResolvePeer(req.Address)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		interval := time.Duration(req.IntervalMs) * time.Millisecond
		if interval <= 0 {
			interval = time.Second
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout(req.TimeoutMs, 30*time.Second+time.Duration(req.Count)*interval))
		defer cancel()
		res, err := d.Node.Ping(ctx, id, req.Count, interval)
		if err != nil {
			writeErr(w, http.StatusBadGateway, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

func (d *Daemon) netRoutes() {
	d.Handle("GET /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.nets.list())
	})
	d.Handle("POST /v1/networks/create", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkCreateRequest
		if !readJSON(w, r, &req) {
			return
		}
		res, err := d.nets.create(r.Context(), req)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	d.Handle("POST /v1/networks/join", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRequest
		if !readJSON(w, r, &req) {
			return
		}
		id, err := overlay.ParseNetworkID(strings.TrimSpace(req.Network))
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("%q is not a network ID: %w", req.Network, err))
			return
		}
		if err := d.nets.join(id); err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"network": id.String()})
	})
	d.Handle("POST /v1/networks/leave", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRequest
		if !readJSON(w, r, &req) {
			return
		}
		j, err := d.nets.resolve(req.Network)
		if err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		if err := d.nets.leave(j); err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"network": j.m.ID.String()})
	})
	d.Handle("POST /v1/networks/members", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRequest
		if !readJSON(w, r, &req) {
			return
		}
		j, err := d.nets.resolve(req.Network)
		if err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, j.info())
	})
	d.Handle("POST /v1/networks/authorize", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRequest
		if !readJSON(w, r, &req) {
			return
		}
		j, member, ok := d.netMember(w, req)
		if !ok {
			return
		}
		var ip netip.Addr
		if req.IPv4 != "" {
			a, err := netip.ParseAddr(req.IPv4)
			if err != nil || !a.Is4() {
				writeErr(w, http.StatusBadRequest, fmt.Errorf("--ipv4 %q is not an IPv4 address", req.IPv4))
				return
			}
			ip = a
		}
		var expires time.Time
		if req.ExpiresS > 0 {
			expires = time.Now().Add(time.Duration(req.ExpiresS) * time.Second)
		}
		if err := d.nets.authorize(r.Context(), j, member, ip, expires); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"network": j.m.ID.String(), "address": member.String()})
	})
	d.Handle("POST /v1/networks/revoke", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRequest
		if !readJSON(w, r, &req) {
			return
		}
		j, member, ok := d.netMember(w, req)
		if !ok {
			return
		}
		if err := d.nets.revoke(r.Context(), j, member); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"network": j.m.ID.String(), "address": member.String()})
	})
}

func (d *Daemon) netMember(w http.ResponseWriter, req api.NetworkRequest) (*joined, peer.ID, bool) {
	j, err := d.nets.resolve(req.Network)
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return nil, "", false
	}
	member, err := d.Node.ResolvePeer(req.Address)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return nil, "", false
	}
	return j, member, true
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

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, errors.New("bad request body: "+err.Error()))
		return false
	}
	return true
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

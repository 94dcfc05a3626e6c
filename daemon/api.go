package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/dht"
)

func (d *Daemon) routes() {
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

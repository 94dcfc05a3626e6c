package daemon

import (
	"encoding/hex"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/dht"
	ma "github.com/multiformats/go-multiaddr"
)

// The control API's JSON types (package api) are the daemon's business:
// dht returns its own, and these map them.

func apiStatus(st dht.Status, rs dht.RelayStatus, cl dht.ConnLimits) api.Status {
	return api.Status{
		Address:       st.Address.String(),
		Key:           hex.EncodeToString(st.Key[:]),
		Version:       st.Version,
		ListenAddrs:   strs(st.ListenAddrs),
		ObservedAddrs: strs(st.ObservedAddrs),
		Addrs:         nonNil(st.Addrs),
		Reachability:  st.Reachability,
		AutoNAT:       st.AutoNAT,
		DHTMode:       st.DHTMode,
		Relay:         st.Relay,
		RoutingTable:  st.RoutingTable,
		RoutingLAN:    st.LANRoutingTable,
		Connected:     st.Connected,
		RelayAddrs:    strs(st.RelayAddrs),
		Uptime:        st.Uptime.Seconds(),
		RelayService: &api.RelayService{Reservations: rs.Limits.Reservations, ReservationsPerIP: rs.Limits.ReservationsPerIP,
			ReservationsPerASN: rs.Limits.ReservationsPerASN, CircuitsPerPeer: rs.Limits.CircuitsPerPeer,
			CircuitDuration: rs.Limits.CircuitDuration.Seconds(), CircuitBytes: rs.Limits.CircuitBytes,
			AllowedReservations: rs.AllowedReservations, RefusedReservations: rs.RefusedReservations,
			AllowedCircuits: rs.AllowedCircuits, RefusedCircuits: rs.RefusedCircuits, Serving: rs.Serving},
		ConnLimits: &api.ConnLimits{LowWater: cl.LowWater, HighWater: cl.HighWater, GracePeriod: cl.GracePeriod.Seconds(),
			Inbound: cl.Inbound, Outbound: cl.Outbound, Total: cl.Total},
	}
}

func apiPeers(ps []dht.Peer) []api.Peer {
	out := make([]api.Peer, 0, len(ps))
	for _, p := range ps {
		e := api.Peer{Address: p.Address.String(), Addrs: strs(p.Addrs), Path: p.Path, Via: p.Via, Transport: p.Route.Transport, Scope: p.Route.Scope, InDHT: p.InDHT}
		if p.RTT > 0 {
			e.RTTms = ms(p.RTT)
		}
		if p.Punch != nil {
			e.Punch = &api.Punch{Attempts: p.Punch.Attempts, Failures: p.Punch.Failures, LastError: p.Punch.LastError, NextInS: p.Punch.NextIn.Seconds(),
				NAT: p.Punch.NAT, PeerNAT: p.Punch.PeerNAT, Birthday: p.Punch.Birthday, BirthdayRuns: p.Punch.BirthdayRuns}
		}
		out = append(out, e)
	}
	return out
}

func apiFind(r dht.FindResult) api.FindResult {
	return api.FindResult{Address: r.Address.String(), Addrs: strs(r.Addrs), ElapsedMs: ms(r.Elapsed)}
}

func apiPing(r dht.PingResult) api.PingResult {
	out := api.PingResult{Address: r.Address.String(), Path: r.Path, Via: r.Via, Paths: nonNil(r.Paths), RTTms: []float64{},
		ConnectMs: ms(r.Connect), ConnectPath: r.ConnectPath, ConnectVia: r.ConnectVia, Sent: r.Sent, Received: r.Received}
	for _, d := range r.RTTs {
		out.RTTms = append(out.RTTms, ms(d))
	}
	return out
}

func strs(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// ms is d in milliseconds with microsecond resolution.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

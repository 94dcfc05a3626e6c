package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/overlay/netrec"
	ma "github.com/multiformats/go-multiaddr"
)

// waitInvite waits until td's own invite state on id is want.
func waitInvite(t *testing.T, td *testDaemon, id, want string) api.Network {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, ok := td.network(t, id)
		if ok && n.Invite == want {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("network %s: %+v, want invite %q", id, n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A node that knows no peer joins a private network with nothing but an
// invite token; the online owner certifies it; a second node with the
// one-use token is refused; bad tokens and invites give clear errors.
func TestInviteJoin(t *testing.T) {
	owner := startDaemon(t)
	var created api.NetworkCreated
	owner.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "t", Private: true, IPv4: "10.6.0.0/24"}, &created)
	var inv api.Invite
	owner.call(t, "POST", "/v1/networks/invite", api.InviteRequest{Network: created.Network, ExpiresS: 3600, Uses: 1}, &inv)
	tok, err := netrec.ParseToken(inv.Token)
	if err != nil || tok.Capability == nil || tok.Capability.Uses != 1 || len(tok.Addrs) == 0 || tok.Network.String() != created.Network {
		t.Fatalf("token %+v: %v", tok, err)
	}

	c := startDaemon(t) // no bootstrap peer
	c.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: inv.Token}, nil)
	waitStatus(t, c, created.Network, "ok", 1)
	// The owner is online: it certifies the newcomer at once.
	waitInvite(t, c, created.Network, "")
	if n := waitStatus(t, c, created.Network, "ok", 1); n.Expires != "" {
		t.Errorf("certificate expiry %q, want none", n.Expires)
	}

	d := startDaemon(t)
	d.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Token: inv.Token}, nil)
	waitInvite(t, d, created.Network, "used up")
	waitStatus(t, d, created.Network, "unauthorized", 0)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		td   *testDaemon
		path string
		req  any
		want string
	}{
		{d, "/v1/networks/join", api.NetworkRequest{Token: "hello"}, "not a kadlan invite"},
		{d, "/v1/networks/join", api.NetworkRequest{Network: inv.Token[:len(inv.Token)-2]}, "damaged"},
		{c, "/v1/networks/invite", api.InviteRequest{Network: created.Network}, "only the network's owner"},
		{owner, "/v1/networks/invite", api.InviteRequest{Network: created.Network, Uses: 1000}, "--uses"},
		{owner, "/v1/networks/invite", api.InviteRequest{Network: "zz"}, "not on a network"},
	} {
		err := tc.td.client.Do(ctx, "POST", tc.path, tc.req, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %+v: %v, want %q", tc.path, tc.req, err, tc.want)
		}
	}
}

func TestInviteAddrRank(t *testing.T) {
	order := []string{
		"/ip4/192.0.0.130/tcp/4242",
		"/ip4/192.0.0.130/udp/4242/quic-v1",
		"/ip4/192.0.0.130/tcp/4242/ws",
		"/ip6/2001:2::4/tcp/4242",
		"/ip4/192.0.0.131/tcp/4242/p2p/12D3KooWB8L3ZrBycWopk8AYhmNcqhHDoRdoXLzzm3SQiPrEVM3k/p2p-circuit",
		"/ip4/192.168.1.2/tcp/4242",
		"/ip4/127.0.0.1/tcp/4242",
	}
	for i := 1; i < len(order); i++ {
		a, b := addrRank(ma.StringCast(order[i-1])), addrRank(ma.StringCast(order[i]))
		if a >= b {
			t.Errorf("%s (rank %d) should come before %s (rank %d)", order[i-1], a, order[i], b)
		}
	}
}

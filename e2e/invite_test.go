package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// memberStatus is who's status as seen by n on network id ("" if unknown).
func memberStatus(n *labtest.Node, id, who string) (api.Member, error) {
	var ms []api.Member
	if err := n.JSON(&ms, "members", id); err != nil {
		return api.Member{}, err
	}
	for _, m := range ms {
		if m.Address == who {
			return m, nil
		}
	}
	return api.Member{}, fmt.Errorf("%s does not know %s", n.Host.Name, who)
}

// TestInviteToken (issue 15): the owner of a private network makes a
// one-use invite and goes offline. A fresh node behind an EIM NAT, started
// with no flags at all, joins with nothing but the token: it is ok and
// pings a member over the TAP within 10 s. A second fresh node with the
// same token stays unauthorized. When the owner comes back, its node
// certifies the invited member.
func TestInviteToken(t *testing.T) {
	w := newNATWorld(t)
	owner := w.pubs[0]
	id := createNet(t, owner, "--private", "--name", "invite", "--ipv4", "10.98.0.0/24")
	m := w.behind(t, w.lab.NATRouter("natA", netlab.EIM, nil), "m")
	if _, err := m.CLI("join", id); err != nil {
		t.Fatal(err)
	}
	waitNet(t, m, id, "unauthorized", 0)
	if err := netlab.Eventually(lanBound, 250*time.Millisecond, func() error {
		_, err := memberStatus(owner, id, m.Address)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.CLI("net", "authorize", id, m.Address); err != nil {
		t.Fatal(err)
	}
	mInfo := waitNet(t, m, id, "ok", 1)
	mIP := addrOf(mInfo.IPv4[0])

	var inv api.Invite
	if err := owner.JSON(&inv, "net", "invite", id, "--uses", "1", "--expires", "1h"); err != nil {
		t.Fatal(err)
	}
	t.Logf("invite: %d characters, peers %v", len(inv.Token), inv.Addrs)
	if !strings.HasPrefix(inv.Token, "kadlan1-") || len(inv.Addrs) == 0 || inv.Uses != 1 || !inv.Private {
		t.Fatalf("invite %+v", inv)
	}
	owner.Stop()
	if err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		if owner.Running() {
			return fmt.Errorf("owner still running")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A fresh node behind NAT, no flags: nothing but the token.
	natB := w.lab.NATRouter("natB", netlab.EIM, nil)
	c := natB.PrivateHost("c").StartNode(t)
	start := time.Now()
	if _, err := c.CLI("join", inv.Token); err != nil {
		t.Fatal(err)
	}
	err := netlab.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		x, err := network(c, id)
		if err != nil {
			return err
		}
		if x.Status != "ok" || x.Invite != "admitted" {
			return fmt.Errorf("c: status %s, invite %q, %d links", x.Status, x.Invite, x.Links)
		}
		return vpingOnce(c, mIP)
	})
	if err != nil {
		t.Fatalf("10 s after kadlan join TOKEN: %v", err)
	}
	t.Logf("joined with the token, ok and pinging the member after %v", time.Since(start).Round(10*time.Millisecond))
	if ms, err := memberStatus(m, id, c.Address); err != nil || ms.Status != "invited" {
		t.Fatalf("the member sees c as %+v (%v), want invited", ms, err)
	}

	// The token's one use is taken: a second fresh node is refused.
	d := natB.PrivateHost("d").StartNode(t)
	if _, err := d.CLI("join", inv.Token); err != nil {
		t.Fatal(err)
	}
	dx := waitNet(t, d, id, "unauthorized", 0)
	// The device gives up the address it claimed at the next step of the
	// network's loop after the status dropped: wait for that state.
	err = netlab.Eventually(lanBound, 250*time.Millisecond, func() error {
		var err error
		if dx, err = network(d, id); err != nil {
			return err
		}
		if dx.Invite != "used up" || len(dx.IPv4) != 0 {
			return fmt.Errorf("second redeemer: status %s, invite %q, IPv4 %v; want unauthorized, used up, none", dx.Status, dx.Invite, dx.IPv4)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if err := vpingOnce(d, mIP); err == nil {
		t.Errorf("the second redeemer pinged the member")
	}
	if ms, err := memberStatus(m, id, d.Address); err == nil && (ms.Status == "invited" || ms.Status == "ok" || ms.Link) {
		t.Errorf("the member admitted the second redeemer: %+v", ms)
	}

	// The owner comes back and certifies c.
	owner.Start(t, "--bootstrap", w.boot.BootstrapAddr())
	err = netlab.Eventually(lanBound, 250*time.Millisecond, func() error {
		for _, n := range []*labtest.Node{m, owner} {
			ms, err := memberStatus(n, id, c.Address)
			if err != nil {
				return err
			}
			if ms.Status != "ok" {
				return fmt.Errorf("%s sees c as %s", n.Host.Name, ms.Status)
			}
		}
		x, err := network(c, id)
		if err != nil {
			return err
		}
		if x.Status != "ok" || x.Invite != "" {
			return fmt.Errorf("c: status %s, invite %q (want a certificate)", x.Status, x.Invite)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the owner's return: %v", err)
	}
	if err := vping(c, mIP); err != nil {
		t.Errorf("c with its certificate cannot ping the member: %v", err)
	}
}

package main

import (
	"strings"
	"testing"

	dht "github.com/libp2p/go-libp2p-kad-dht"
)

// The anchor never bootstraps from kad-dht's public default peers.
func TestParseBootstrapRefusesPublicPeers(t *testing.T) {
	for _, a := range dht.DefaultBootstrapPeers {
		if _, err := parseBootstrap(a.String()); err == nil || !strings.Contains(err.Error(), "public bootstrap") {
			t.Errorf("%s accepted (err %v)", a, err)
		}
	}
	lab := "/ip4/192.0.0.129/tcp/4001/p2p/12D3KooWAqE8KxCfE6rYu5WXiNtPxZKJz9oCnqappq3ez67r4Kbb"
	got, err := parseBootstrap(lab + ", ")
	if err != nil || len(got) != 1 {
		t.Fatalf("in-lab node: %v, %v", got, err)
	}
	if got, err := parseBootstrap(""); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %v, %v", got, err)
	}
}

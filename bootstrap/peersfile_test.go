package bootstrap

import (
	"strings"
	"testing"
)

const idA = "12D3KooWGzMSTpC4A1A2dq6JjrEdK3pUH4kLEz3Lz6bREDU3nZuC"
const idB = "12D3KooWSKmYvJfTfkwzsUzBk4RYf1RHBcnGd7pM2gtE4dzYhYvA"

func TestParsePeers(t *testing.T) {
	in := `# community peers, shared 2026-11
/ip4/192.0.0.130/tcp/4242/p2p/` + idA + `   # alice
/ip4/192.0.0.130/udp/4242/quic-v1/p2p/` + idA + `

/ip6/2001:2::5/tcp/4242/p2p/` + idB + `
`
	ais, err := ParsePeers(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ais) != 2 {
		t.Fatalf("got %d peers, want 2 (lines for one address merge)", len(ais))
	}
	n := map[string]int{}
	for _, ai := range ais {
		n[ai.ID.String()] = len(ai.Addrs)
	}
	if n[idA] != 2 || n[idB] != 1 {
		t.Fatalf("addrs per peer: %v", n)
	}
}

func TestParsePeersErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/ip4/1.2.3.4/tcp/1\n", "line 1: multiaddr \"/ip4/1.2.3.4/tcp/1\" lacks /p2p/"},
		{"# ok\n\nnot-a-multiaddr\n", "line 3: bad multiaddr"},
		{"/ip4/1.2.3.4/tcp/1/p2p/notapeer\n", "line 1:"},
	} {
		_, err := ParsePeers(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePeers(%q) error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParsePeers(f *testing.F) {
	f.Add("/ip4/192.0.0.130/tcp/4242/p2p/" + idA + "\n")
	f.Add("# only a comment\n")
	f.Add("/ip6/::1/udp/1/quic-v1/p2p/" + idB)
	f.Add("/dns4/example.invalid/tcp/443/wss/p2p/" + idA)
	f.Add("\x00\xff/p2p/")
	f.Fuzz(func(t *testing.T, s string) {
		ais, err := ParsePeers(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, ai := range ais {
			if ai.ID == "" || len(ai.Addrs) == 0 && len(ais) == 0 {
				t.Fatalf("accepted an empty peer from %q", s)
			}
		}
	})
}

package daemon

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestZoneOf(t *testing.T) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	for _, tt := range []struct{ name, want string }{
		{"lab", "lab.kadlan"},
		{"My Lab", "my-lab.kadlan"},
		{"", ""}, // the ID's first 8 characters
		{"!!!", ""},
	} {
		def, err := netrec.NewDefinition(k, tt.name, false, netip.Prefix{}, 0, netrec.BroadcastParams{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := tt.want
		if want == "" {
			want = def.ID().String()[:8] + ".kadlan"
		}
		if got := zoneOf(def.ID(), def, "kadlan"); got != want {
			t.Errorf("zoneOf(%q) = %q, want %q", tt.name, got, want)
		}
	}
}

func TestResolvedCommands(t *testing.T) {
	got := resolvedCommands("kl1234abcd", netip.MustParseAddr("10.99.0.1"), "lab.kadlan")
	want := []string{"resolvectl dns kl1234abcd 10.99.0.1", "resolvectl domain kl1234abcd ~lab.kadlan"}
	var lines []string
	for _, argv := range got {
		lines = append(lines, strings.Join(argv, " "))
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("commands %q, want %q", lines, want)
	}
	// The registrar runs them in order through the seam, and stops at
	// the first that fails.
	var ran []string
	fail := ""
	reg := resolvedRegistrar(func(ctx context.Context, argv []string) error {
		ran = append(ran, strings.Join(argv, " "))
		if argv[1] == fail {
			return errors.New("no such link")
		}
		return nil
	}, t.Logf)
	reg(context.Background(), "kl1234abcd", netip.MustParseAddr("10.99.0.1"), "lab.kadlan")
	if !slices.Equal(ran, want) {
		t.Fatalf("ran %q, want %q", ran, want)
	}
	ran, fail = nil, "dns"
	reg(context.Background(), "kl1234abcd", netip.MustParseAddr("10.99.0.1"), "lab.kadlan")
	if len(ran) != 1 {
		t.Fatalf("went on after a failure: %q", ran)
	}
}

func TestCheckName(t *testing.T) {
	if err := CheckName("alice", "kadlan"); err != nil {
		t.Fatal(err)
	}
	if err := CheckName("", "kadlan"); err != nil {
		t.Fatal(err)
	}
	if err := CheckName("a", "kadlan.internal"); err != nil {
		t.Fatal(err)
	}
	if CheckName("Alice", "kadlan") == nil || CheckName("a", "") == nil || CheckName("a", "x..y") == nil || CheckName("a", "x.") == nil {
		t.Fatal("bad name or suffix accepted")
	}
}

func TestStubListening(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 3245: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   991        0 18412 2 0000000000000000 0
 5000: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
`
	if !stubListening([]byte(table)) {
		t.Fatal("stub listener not seen")
	}
	if stubListening([]byte(strings.Replace(table, "3500007F:0035", "0100007F:0035", 1))) {
		t.Fatal("127.0.0.1:53 taken for resolved's stub")
	}
}

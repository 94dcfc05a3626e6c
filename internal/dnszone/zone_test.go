package dnszone

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	bV4 = netip.MustParseAddr("10.99.0.2")
	bV6 = netip.MustParseAddr("fd00::2")
)

func fakeLookup(name string) (netip.Addr, netip.Addr, bool) {
	switch name {
	case "b":
		return bV4, bV6, true
	case "nov4":
		return netip.Addr{}, bV6, true
	}
	return netip.Addr{}, netip.Addr{}, false
}

// serve starts a server for lab.kadlan on 127.0.0.1:0 and returns its
// address; the test's cleanup stops it and waits.
func serve(t *testing.T) string {
	t.Helper()
	pc, ln, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(New("Lab.Kadlan", fakeLookup), t.Logf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx, pc, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return pc.LocalAddr().String()
}

func TestResponder(t *testing.T) {
	addr := serve(t)
	for _, net := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: net, Timeout: 5 * time.Second}
		for _, tt := range []struct {
			name  string
			qtype uint16
			rcode int
			want  string // the answer's address, "" for none
			auth  bool
		}{
			{"b.lab.kadlan.", dns.TypeA, dns.RcodeSuccess, "10.99.0.2", true},
			{"B.LAB.kadlan.", dns.TypeA, dns.RcodeSuccess, "10.99.0.2", true},
			{"b.lab.kadlan.", dns.TypeAAAA, dns.RcodeSuccess, "fd00::2", true},
			{"nov4.lab.kadlan.", dns.TypeA, dns.RcodeSuccess, "", true}, // NODATA
			{"b.lab.kadlan.", dns.TypeMX, dns.RcodeSuccess, "", true},
			{"nobody.lab.kadlan.", dns.TypeA, dns.RcodeNameError, "", true},
			{"x.b.lab.kadlan.", dns.TypeA, dns.RcodeNameError, "", true},
			{"b\\046x.lab.kadlan.", dns.TypeA, dns.RcodeNameError, "", true},
			{"lab.kadlan.", dns.TypeSOA, dns.RcodeSuccess, "", true},
			{"example.com.", dns.TypeA, dns.RcodeRefused, "", false},
			{"b.other.kadlan.", dns.TypeA, dns.RcodeRefused, "", false},
			{"kadlan.", dns.TypeA, dns.RcodeRefused, "", false},
		} {
			m := new(dns.Msg)
			m.SetQuestion(tt.name, tt.qtype)
			m.RecursionDesired = true
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				t.Fatalf("%s %s: %v", net, tt.name, err)
			}
			if r.Rcode != tt.rcode || r.Authoritative != tt.auth || r.RecursionAvailable {
				t.Errorf("%s %s %s: rcode %s aa %v ra %v, want %s aa %v", net, tt.name, dns.TypeToString[tt.qtype],
					dns.RcodeToString[r.Rcode], r.Authoritative, r.RecursionAvailable, dns.RcodeToString[tt.rcode], tt.auth)
			}
			got := ""
			for _, rr := range r.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = rr.A.String()
				case *dns.AAAA:
					got = rr.AAAA.String()
				}
			}
			if got != tt.want {
				t.Errorf("%s %s: answer %q, want %q", net, tt.name, got, tt.want)
			}
		}
	}
}

func TestResponderNotAQuery(t *testing.T) {
	z := New("lab.kadlan", fakeLookup)
	m := new(dns.Msg)
	m.SetQuestion("b.lab.kadlan.", dns.TypeA)
	m.Opcode = dns.OpcodeUpdate
	if r := z.Answer(m); r.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("update: %s", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	if r := z.Answer(m); r.Rcode != dns.RcodeFormatError {
		t.Fatalf("no question: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestResponderRateLimit(t *testing.T) {
	addr := serve(t)
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("b.lab.kadlan.", dns.TypeA)
	answered := 0
	for range PerSourceBurst + 50 {
		if _, _, err := c.Exchange(m, addr); err == nil {
			answered++
		}
	}
	// The burst, plus what refilled while the loop ran (the timeouts).
	if answered < PerSourceBurst || answered >= PerSourceBurst+50 {
		t.Fatalf("%d of %d queries answered, want the burst of %d and some refused", answered, PerSourceBurst+50, PerSourceBurst)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(1, 2, 2, func() time.Time { return now })
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	if !l.Allow(a) || !l.Allow(a) || l.Allow(a) {
		t.Fatal("burst of 2 not enforced")
	}
	if !l.Allow(b) || l.Allow(c) {
		t.Fatal("third source accepted while two are tracked and busy")
	}
	now = now.Add(3 * time.Second) // every bucket refilled: forgotten
	if !l.Allow(c) || !l.Allow(a) {
		t.Fatal("refilled sources not forgotten or refused")
	}
}

// Whatever bytes arrive, the server either ignores them or packs an
// answer that parses, with the query's ID, and never recurses.
func FuzzHandle(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"b.lab.kadlan.", dns.TypeA}, {"B.lab.kadlan.", dns.TypeAAAA}, {"lab.kadlan.", dns.TypeANY}, {"x.example.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, false)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	s := NewServer(New("lab.kadlan", fakeLookup), nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := s.handle(b, dns.MinMsgSize)
		if !ok {
			return
		}
		req, resp := new(dns.Msg), new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			t.Fatal("answered a message that does not parse")
		}
		if err := resp.Unpack(out); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if resp.Id != req.Id || !resp.Response || resp.RecursionAvailable {
			t.Fatalf("bad answer header %+v", resp.MsgHdr)
		}
		for _, rr := range resp.Answer {
			if !strings.HasSuffix(strings.ToLower(rr.Header().Name), "lab.kadlan.") {
				t.Fatalf("answer outside the zone: %v", rr)
			}
		}
	})
}

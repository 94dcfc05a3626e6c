// Package dnszone answers DNS queries for the member names of one kadlan
// network (NAME.NETWORK.SUFFIX) from a table it is handed. It is
// authoritative for that zone only: it never recurses and never forwards,
// so it is no open resolver; a name outside the zone is REFUSED.
package dnszone

import (
	"net/netip"
	"strings"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/miekg/dns"
)

// TTLs of answers: short, since members come and go and addresses of
// members on public networks may move.
const (
	TTL         = 10 // seconds, A and AAAA
	NegativeTTL = 5  // seconds, SOA minimum: NXDOMAIN and NODATA caching
)

// Lookup returns the addresses of the member called name (one valid
// label, see netrec.ValidName); ok is false for no such member. It must
// be safe for concurrent use and must not block.
type Lookup func(name string) (ipv4, ipv6 netip.Addr, ok bool)

// Zone is one network's zone.
type Zone struct {
	origin string // lowercase, fully qualified: "lab.kadlan."
	lookup Lookup
}

// New returns the zone of origin ("lab.kadlan", with or without the final
// dot; case does not matter) answered from lookup.
func New(origin string, lookup Lookup) *Zone {
	return &Zone{origin: dns.Fqdn(strings.ToLower(origin)), lookup: lookup}
}

// Origin is the zone's name, lowercase and fully qualified.
func (z *Zone) Origin() string { return z.origin }

// Answer returns the response to req: A and AAAA records for members,
// NXDOMAIN for other names in the zone, REFUSED outside it, NOTIMP for
// anything but a query. It never returns nil.
func (z *Zone) Answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	if req.Response || len(req.Question) != 1 {
		resp.SetRcodeFormatError(req)
		return resp
	}
	if req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		return resp
	}
	resp.SetReply(req)
	resp.RecursionAvailable = false
	if o := req.IsEdns0(); o != nil {
		resp.SetEdns0(dns.MinMsgSize, false)
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY || !dns.IsSubDomain(z.origin, name) {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	resp.Authoritative = true
	if name == z.origin {
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, z.soa())
		} else {
			resp.Ns = append(resp.Ns, z.soa())
		}
		return resp
	}
	label, ok := z.label(name)
	var v4, v6 netip.Addr
	if ok {
		v4, v6, ok = z.lookup(label)
	}
	if !ok {
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, z.soa())
		return resp
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
	}
	if (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY) && v4.Is4() {
		resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: v4.AsSlice()})
	}
	if (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY) && v6.Is6() && !v6.Is4In6() {
		resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: v6.AsSlice()})
	}
	if len(resp.Answer) == 0 {
		resp.Ns = append(resp.Ns, z.soa()) // NODATA
	}
	return resp
}

// label returns the member name in name (lowercase, fully qualified,
// inside the zone): exactly one valid label before the origin.
func (z *Zone) label(name string) (string, bool) {
	rel, ok := strings.CutSuffix(name, "."+z.origin)
	if !ok || netrec.ValidName(rel) != nil {
		return "", false // a deeper name, or escapes and other bytes
	}
	return rel, true
}

func (z *Zone) soa() dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: z.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: NegativeTTL},
		Ns:  z.origin, Mbox: "hostmaster." + z.origin,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: NegativeTTL,
	}
}

// Package api holds the JSON types of kadlan's control API and a client for
// it. The daemon serves these over HTTP on a Unix socket; the CLI prints them
// with --json. Field names are stable: scripts may rely on them.
package api

import "encoding/json"

// Status is the answer of GET /v1/status and `kadlan status --json`.
type Status struct {
	Address       string   `json:"address"`        // libp2p peer ID
	Key           string   `json:"key"`            // SHA-256 of the peer ID, hex: place in XOR space
	Version       string   `json:"version"`        // kadlan version
	ListenAddrs   []string `json:"listen_addrs"`   // addresses the host listens on
	ObservedAddrs []string `json:"observed_addrs"` // addresses peers saw us at
	Addrs         []string `json:"addrs"`          // addresses this node advertises (shareable)
	Reachability  string   `json:"reachability"`   // public, private or unknown
	// AutoNAT is AutoNAT's verdict for a node behind NAT: kadlan takes
	// "public" only once a node it never contacted has reached it.
	AutoNAT      string   `json:"autonat,omitempty"`
	DHTMode      string   `json:"dht_mode"`          // server or client
	RoutingTable int      `json:"routing_table"`     // peers in the Internet's (WAN) Kademlia routing table
	RoutingLAN   int      `json:"routing_table_lan"` // peers in the LAN DHT's routing table (private addresses, attached subnets)
	Connected    int      `json:"connected"`         // connected peers
	Relay        string   `json:"relay"`             // relay service: on or off
	RelayAddrs   []string `json:"relay_addrs"`       // circuit addresses reserved on relays
	Uptime       float64  `json:"uptime_s"`
	Bootstrap    string   `json:"bootstrap"` // joined, or waiting (no peer known yet)

	RelayService *RelayService `json:"relay_service,omitempty"` // limits and decisions of the relay service
	ConnLimits   *ConnLimits   `json:"conn_limits,omitempty"`   // connection manager and resource manager limits
}

// RelayService is what this node's relay allows, and what it refused:
// relays serve kadlan nodes only (README, Threat model).
type RelayService struct {
	Reservations        int     `json:"reservations"`         // slots held for other nodes
	ReservationsPerIP   int     `json:"reservations_per_ip"`  // of which one source IP may hold
	ReservationsPerASN  int     `json:"reservations_per_asn"` // of which one IPv6 ASN may hold
	CircuitsPerPeer     int     `json:"circuits_per_peer"`    // open relayed connections per peer
	CircuitDuration     float64 `json:"circuit_duration_s"`   // a circuit is reset after this
	CircuitBytes        int64   `json:"circuit_bytes"`        // ... or this many bytes each way
	AllowedReservations uint64  `json:"allowed_reservations"` // requests from kadlan nodes
	RefusedReservations uint64  `json:"refused_reservations"` // requests from peers that are not kadlan nodes
	AllowedCircuits     uint64  `json:"allowed_circuits"`
	RefusedCircuits     uint64  `json:"refused_circuits"`
	// Serving counts the peers holding a reservation here that this relay
	// names, in answers to FIND_PEER, by its circuit addresses.
	Serving int `json:"serving"`
}

// ConnLimits: the connection manager trims to LowWater above HighWater
// (idle strangers first, member links never); the resource manager refuses
// beyond Inbound, Outbound and Total.
type ConnLimits struct {
	LowWater    int     `json:"low_water"`
	HighWater   int     `json:"high_water"`
	GracePeriod float64 `json:"grace_period_s"`
	Inbound     int     `json:"inbound"`
	Outbound    int     `json:"outbound"`
	Total       int     `json:"total"`
}

// Peer is one entry of GET /v1/peers and `kadlan peers --json`.
type Peer struct {
	Address string   `json:"address"`       // libp2p peer ID
	Addrs   []string `json:"addrs"`         // remote multiaddrs of open connections
	Path    string   `json:"path"`          // direct or relayed
	Via     string   `json:"via,omitempty"` // relay's address when path is relayed
	// Transport and Scope are of the connection a member link takes (direct
	// TCP first): tcp, quic, ws or webtransport; lan (private address) or
	// internet.
	Transport string  `json:"transport,omitempty"`
	Scope     string  `json:"scope,omitempty"`
	RTTms     float64 `json:"rtt_ms,omitempty"` // smoothed RTT, when known
	InDHT     bool    `json:"in_routing_table"`
	// Punch is present while the path is relayed and hole punching has
	// run or is planned: kadlan punches again with a backoff (20 s, then
	// doubling to 5 min) for as long as the peer stays relayed.
	Punch *Punch `json:"punch,omitempty"`
}

// Punch is the hole-punching state with one relayed peer.
type Punch struct {
	Attempts  int     `json:"attempts"`             // DCUtR rounds, either side starting
	Failures  int     `json:"failures"`             // rounds without a direct path
	LastError string  `json:"last_error,omitempty"` // of the last failed round
	NextInS   float64 `json:"next_in_s,omitempty"`  // until this node punches again (absent: the other side does)
	// Birthday punching, for a symmetric NAT facing an endpoint-independent one.
	NAT          string `json:"nat,omitempty"`           // this node's NAT mapping: symmetric, endpoint-independent or unknown
	PeerNAT      string `json:"peer_nat,omitempty"`      // the peer's, as it said in the last exchange
	Birthday     string `json:"birthday,omitempty"`      // outcome of the last exchange ("both sides behind symmetric NATs: stays relayed", ...) or "running"
	BirthdayRuns int    `json:"birthday_runs,omitempty"` // exchanges so far, in either role
}

// FindResult is the answer of POST /v1/find and `kadlan find --json`.
type FindResult struct {
	Address   string   `json:"address"`
	Addrs     []string `json:"addrs"`
	ElapsedMs float64  `json:"elapsed_ms"`
}

// PingResult is the answer of POST /v1/ping and `kadlan ping --json`.
type PingResult struct {
	Address   string    `json:"address"`
	Path      string    `json:"path"`          // direct or relayed (path of the last reply)
	Via       string    `json:"via,omitempty"` // relay's address when relayed
	Paths     []string  `json:"paths"`         // path of each reply, in order
	RTTms     []float64 `json:"rtt_ms"`        // one per reply
	ConnectMs float64   `json:"connect_ms"`    // lookup + connection set-up before the first ping
	// ConnectPath is the path right after the connection was set up,
	// before hole punching had a chance: relayed for a peer behind NAT.
	ConnectPath string `json:"connect_path"`
	ConnectVia  string `json:"connect_via,omitempty"`
	Sent        int    `json:"sent"`
	Received    int    `json:"received"`
}

// FindRequest is the body of POST /v1/find.
type FindRequest struct {
	Address   string `json:"address"`
	TimeoutMs int    `json:"timeout_ms,omitempty"`
}

// PingRequest is the body of POST /v1/ping.
type PingRequest struct {
	Address    string `json:"address"`
	Count      int    `json:"count"`
	IntervalMs int    `json:"interval_ms,omitempty"`
	TimeoutMs  int    `json:"timeout_ms,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// NetworkCreateRequest is the body of POST /v1/networks/create.
type NetworkCreateRequest struct {
	Name    string `json:"name"`
	Private bool   `json:"private"`
	IPv4    string `json:"ipv4,omitempty"` // pool CIDR; empty: 10.77.0.0/16
}

// NetworkRequest names a network (and, for authorize/revoke, a member).
// For join, Token may replace Network: an invite token (kadlan1-...).
type NetworkRequest struct {
	Network   string `json:"network"`
	Token     string `json:"token,omitempty"`
	Address   string `json:"address,omitempty"`
	IPv4      string `json:"ipv4,omitempty"`
	ExpiresS  int64  `json:"expires_s,omitempty"`
	TimeoutMs int    `json:"timeout_ms,omitempty"`
	Name      string `json:"name,omitempty"` // authorize: the member's name in its certificate
}

// InviteRequest is the body of POST /v1/networks/invite.
type InviteRequest struct {
	Network  string `json:"network"`
	ExpiresS int64  `json:"expires_s,omitempty"` // 0: 24 h
	Uses     int    `json:"uses,omitempty"`      // 0: 1
}

// Invite is the answer of POST /v1/networks/invite and `kadlan net invite
// --json`.
type Invite struct {
	Token   string   `json:"token"`
	Network string   `json:"network"`
	Private bool     `json:"private"`
	Expires string   `json:"expires,omitempty"` // RFC 3339; private networks only
	Uses    int      `json:"uses,omitempty"`    // private networks only
	Addrs   []string `json:"addrs"`             // the peers in the token
}

// NetworkCreated is the answer of POST /v1/networks/create.
type NetworkCreated struct {
	Network string `json:"network"`
	Name    string `json:"name"`
	Private bool   `json:"private"`
	IPv4    string `json:"ipv4_pool"`
}

// Network is one object of GET /v1/networks and `kadlan networks --json`.
type Network struct {
	Network   string          `json:"network"` // network ID
	Name      string          `json:"name"`
	Status    string          `json:"status"` // see README: ok, connecting, pending, unauthorized, expired, revoked
	Private   bool            `json:"private"`
	Owner     string          `json:"owner,omitempty"`
	IsOwner   bool            `json:"is_owner"`
	Interface string          `json:"interface"`
	MAC       string          `json:"mac"`
	IPv4      []string        `json:"ipv4"` // CIDR strings
	IPv6      []string        `json:"ipv6"` // CIDR strings
	MTU       int             `json:"mtu"`
	Broadcast json.RawMessage `json:"broadcast"` // implicit social switching parameters
	Expires   string          `json:"expires,omitempty"`
	Invite    string          `json:"invite,omitempty"` // own invite without a certificate: admitted, used up, expired
	Links     int             `json:"links"`            // member links up
	// KnownMembers counts the members this node holds records of (all
	// members on a small network, a sample on a large one).
	KnownMembers int `json:"known_members"`
	// SocialNeighbours counts the members this node exchanged unicast
	// frames with recently (broadcasts go to them).
	SocialNeighbours int             `json:"social_neighbours"`
	Bounds           *LinkBounds     `json:"bounds,omitempty"`
	Members          []Member        `json:"members"`
	Traffic          *Traffic        `json:"traffic,omitempty"`  // member-link traffic so far (absent without a device)
	Counters         json.RawMessage `json:"counters,omitempty"` // switch counters (frames in/out, drops)
	Engine           json.RawMessage `json:"engine,omitempty"`   // engine counters (offload, links without a link, records)
	Error            string          `json:"error,omitempty"`    // why status is "error"
	// MemberName is this node's name on the network, DNSZone the zone its
	// members' names are in (NAME.DNSZONE) and DNSServer the address its
	// responder answers on (empty while none runs).
	MemberName string `json:"member_name,omitempty"`
	DNSZone    string `json:"dns_zone,omitempty"`
	DNSServer  string `json:"dns_server,omitempty"`
}

// Traffic counts the messages (frames, broadcast copies, records) on a
// network's member links since the daemon started, and their encoded bytes
// (link framing included). The fields only grow; the page's traffic chart
// is their rate.
type Traffic struct {
	InFrames  uint64 `json:"in_frames"`
	InBytes   uint64 `json:"in_bytes"`
	OutFrames uint64 `json:"out_frames"`
	OutBytes  uint64 `json:"out_bytes"`
	Dropped   uint64 `json:"out_dropped"` // not queued: a link's queue was full
}

// Web is the answer of GET /v1/web and `kadlan web --json`: where the
// daemon serves its page (kadlan daemon --web) and the token it wants.
type Web struct {
	URL   string `json:"url"`  // http://HOST:PORT/#token=TOKEN
	Addr  string `json:"addr"` // HOST:PORT the page listens on
	Token string `json:"token"`
}

// LinkBounds are what bounds a node's links on a network (links on
// demand, kadlan daemon --link-idle).
type LinkBounds struct {
	OnDemand         bool    `json:"on_demand"`         // false: a link to every member
	MinLinks         int     `json:"min_links"`         // links kept on a quiet network
	MaxIdleInbound   int     `json:"max_idle_inbound"`  // links others dialled, without frames, kept past link_idle_s
	LinkIdle         float64 `json:"link_idle_s"`       // a link without unicast frames this long closes
	SocialNeighbours int     `json:"social_neighbours"` // most recent contacts remembered
	PendingMembers   int     `json:"pending_members"`   // unauthorized entries kept
	KnownMembers     int     `json:"known_members"`     // members of a public network kept (0: private, bounded by certificates)
}

// Member is one entry of `kadlan members NETWORK --json`.
type Member struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"` // NAME in NAME.NETWORK.kadlan (see README, Names)
	Status  string `json:"status"`         // ok, pending (no certificate yet), expired, revoked
	MAC     string `json:"mac"`
	IPv4    string `json:"ipv4,omitempty"`
	IPv6    string `json:"ipv6"`
	Link    bool   `json:"link"`           // a member link is up
	Path    string `json:"path,omitempty"` // direct or relayed, when connected
	Via     string `json:"via,omitempty"`
	// Transport and Scope are those of the member link when one is up (else
	// of the connection a link would take): tcp, quic, ws; lan or internet.
	Transport string `json:"transport,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Expires   string `json:"expires,omitempty"`
	LastSeen  string `json:"last_seen,omitempty"`
}

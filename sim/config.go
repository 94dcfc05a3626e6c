package sim

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/social"
)

// Config is one simulation: a model, its parameters and an optional sweep.
// Every field has a JSON name; `--set name=value` and sweeps use those names
// (dotted for nested fields, e.g. social.budget).
type Config struct {
	Preset      string `json:"preset,omitempty"`
	Description string `json:"description,omitempty"`
	// Model: lookup, sybil, churn, nat, broadcast, lan, rooted or triangle.
	Model string `json:"model"`
	Nodes int    `json:"nodes"`
	Seed  uint64 `json:"seed"`
	// Seeds: replicates per point (seeds seed, seed+1, ...); metrics are
	// their means, with <metric>_ci95 the 95% confidence half-width.
	Seeds int `json:"seeds,omitempty"`

	// Kademlia.
	K            int     `json:"k"`              // bucket size and result count (kad-dht: 20)
	Alpha        int     `json:"alpha"`          // RPCs in flight per lookup path (kad-dht: 10; Kademlia paper: 3)
	Paths        int     `json:"paths"`          // disjoint paths (1 = plain lookup)
	Lookups      int     `json:"lookups"`        // lookups per point
	LookupRate   float64 `json:"lookup_rate"`    // lookups started per second, network-wide
	RPCTimeoutMs float64 `json:"rpc_timeout_ms"` // wait before giving up on a dead contact
	ServiceUs    float64 `json:"service_us"`     // RPC processing time at a node
	SybilShare   float64 `json:"sybil_share"`    // share of colluding adversarial nodes
	RPCBytes     float64 `json:"rpc_bytes"`      // bytes of one FIND_NODE request + answer
	// DialRTTs: round trips a first RPC to a new contact pays before the
	// request (transport and security handshakes). 0: connections are
	// assumed open (the older model). QUIC 1 (its handshake carries TLS
	// 1.3); TCP + TLS 1.3 or Noise, muxer negotiated inside it, 2; TCP
	// with multistream-select rounds for security and muxer, 4. The
	// origin's own routing-table contacts are connected; contacts learned
	// from answers are new. With dial_rtts > 0 a relayed first contact
	// pays the dial to the relay, the circuit set-up (HOP CONNECT, STOP
	// CONNECT, status: one round trip over the circuit) and a security
	// handshake over the circuit (one more), and a direct dial to a public
	// node pays dial_rtts.
	DialRTTs     float64 `json:"dial_rtts"`
	AttackerCPUS float64 `json:"attacker_cpu_s"` // Sybil model: the attacker's CPU budget for identities
	// Adversary: how Sybils answer FIND_NODE: fake (the Sybils closest to
	// the target), drop (never), misroute (real contacts far from it).
	Adversary string `json:"adversary"`
	// EclipseShare of the Sybils take IDs next to EclipseTargets honest
	// targets (then every lookup looks one of them up); 0: random IDs.
	EclipseShare   float64 `json:"eclipse_share"`
	EclipseTargets int     `json:"eclipse_targets"`

	// Churn (model churn): session lengths and bucket refresh.
	Churn          string  `json:"churn"` // weibull or exponential
	SessionMedianS float64 `json:"session_median_s"`
	WeibullShape   float64 `json:"weibull_shape"`
	Availability   float64 `json:"availability"` // long-run share of time a node is up
	RefreshS       float64 `json:"refresh_s"`    // bucket refresh interval
	// TablePolicy: which candidates a bucket keeps: random (K drawn at
	// each refresh) or oldest (the longest-up, as kad-dht keeps old live
	// entries). EvictOnFailure: a failed RPC evicts the contact from the
	// querier's table until its next refresh (kad-dht removes peers that
	// fail); the bucket takes its next candidate.
	TablePolicy    string `json:"table_policy"`
	EvictOnFailure bool   `json:"evict_on_failure"`
	// Origins: lookups start from this many nodes (0: any node), so a
	// node's later lookups see what its earlier ones evicted.
	Origins int `json:"origins"`
	// RefreshValues: the churn model measures each of these refresh
	// intervals (s) on the same churn; empty means [refresh_s].
	RefreshValues []float64 `json:"refresh_values,omitempty"`

	// NAT (models nat, rooted, triangle): see nat.go. The mix is an input;
	// direct shares, attempts and times are outputs of the punching
	// mechanism.
	PublicShare float64 `json:"public_share"` // nodes with a public address
	// NATMix weighs the NAT profiles of NATed nodes (normalised), by name:
	// full-cone, restricted-cone, port-restricted, masquerade,
	// address-dependent, symmetric-seq, symmetric.
	NATMix          map[string]float64 `json:"nat_mix"`
	PacketLoss      float64            `json:"packet_loss"`      // loss of each punching packet
	PunchAttempts   int                `json:"punch_attempts"`   // DCUtR attempts per round (go-libp2p: 3)
	PunchTimeoutMs  float64            `json:"punch_timeout_ms"` // one attempt's dial timeout (go-libp2p: 5 s)
	PunchRetries    int                `json:"punch_retries"`    // later rounds of attempts on a new relayed stream
	PunchRetryS     float64            `json:"punch_retry_s"`    // wait before a later round
	BirthdayProbing bool               `json:"birthday_probing"` // after the first round, probe (Tailscale style; not in DCUtR)
	BirthdaySockets int                `json:"birthday_sockets"` // sockets the hard side opens
	BirthdayProbes  int                `json:"birthday_probes"`  // random-port probes the easy side sends
	BirthdayPPS     float64            `json:"birthday_pps"`     // probes per second
	Relays          int                `json:"relays"`           // relay reservations per NATed node (node: 3)
	// DHTServers: "public" (as the node: only public nodes are DHT
	// servers; NATed nodes are clients found through their relays) or
	// "all" (every node a server). Models rooted and triangle.
	DHTServers  string  `json:"dht_servers"`
	Pairs       int     `json:"pairs"`        // node pairs connected per point
	ConnectRate float64 `json:"connect_rate"` // new connections per second, network-wide

	// Fixed roots (models rooted, triangle).
	Roots        int     `json:"roots"`
	RootCapacity float64 `json:"root_capacity"` // a root serves this many times faster than a node
	// RootShares: when set, the rooted model measures each share of the
	// total service capacity held by the roots (overrides root_capacity).
	RootShares []float64 `json:"root_capacity_shares,omitempty"`
	// BlockCounts: besides R, the rooted model blocks these numbers of
	// busiest nodes and measures new connections again.
	BlockCounts []int `json:"block_counts,omitempty"`
	// Design (model triangle): kad-plain, kad-disjoint or rooted-R.
	Design string `json:"design,omitempty"`
	// KeepaliveBytesS: background bytes per second a node spends keeping
	// its path to a root open (rooted designs).
	KeepaliveBytesS float64 `json:"keepalive_bytes_s"`

	// Central share (model central, Tsitsiklis & Xu): nodes stations at
	// load (arrival rate per station, unit service capacity), central_share
	// of the capacity pooled to serve the longest queues.
	Load         float64 `json:"load"`
	CentralShare float64 `json:"central_share"`
	// CentralShares: when set, each of these shares is measured at every
	// point (one curve per share; overrides central_share).
	CentralShares []float64 `json:"central_shares,omitempty"`
	WarmupTime    float64   `json:"warmup_time"`  // time units before measuring (0: 5 relaxation times)
	MeasureTime   float64   `json:"measure_time"` // measured window (0: 20 relaxation times)
	MaxEvents     float64   `json:"max_events"`   // a share needing more events is not run (null)
	Stations0     int       `json:"stations_p0"`  // stations simulated at p = 0 (independent M/M/1 queues)

	// Broadcast (model broadcast).
	Community        int                 `json:"community"`  // community size of the contact graph
	InDegree         int                 `json:"in_degree"`  // contacts drawn inside the community
	OutDegree        int                 `json:"out_degree"` // contacts drawn outside
	Affinity         float64             `json:"affinity"`   // recency bonus of in-community contacts
	Broadcasts       int                 `json:"broadcasts"` // broadcasts per method and point
	GossipFanout     int                 `json:"gossip_fanout"`
	ReplicationLimit int                 `json:"replication_limit"` // ZeroTier multicastLimit
	Social           social.SocialParams `json:"social"`

	// One network with links on demand (model lan, lan.go): the bounds
	// are the node's (overlay/bounds, vswitch.DefaultMaxKnown); these are
	// the traffic and the simulation's inputs. social.neighbour_age_s is
	// replaced by link_idle_s, as the daemon does.
	ContactsPerMin float64 `json:"contacts_per_min"` // unicast exchanges a member starts per minute
	Partners       int     `json:"partners"`         // members each member talks to (drawn once)
	// NewContactsPerMin: further exchanges a member starts per minute,
	// each with a member drawn afresh (by the same law as partners).
	NewContactsPerMin float64 `json:"new_contacts_per_min"`
	// ContactSkew: 0 draws partners uniformly; > 1 is the exponent of a
	// Zipf law over a random popularity rank (a few members everyone
	// talks to).
	ContactSkew float64 `json:"contact_skew"`
	Active      int     `json:"active"`      // members simulated event by event (0 or >= nodes: all), the rest lazily
	LinkIdleS   float64 `json:"link_idle_s"` // --link-idle: a link without unicast frames this long closes
	LinkRTTs    float64 `json:"link_rtts"`   // round trips of a link's set-up once the address is known
	MaxKnown    int     `json:"max_known"`   // --max-members (0: vswitch.DefaultMaxKnown)
	DurationS   float64 `json:"duration_s"`  // simulated time; everyone joins at 0
	WarmupS     float64 `json:"warmup_s"`    // measured from here on
	SampleS     float64 `json:"sample_s"`    // what each member holds is sampled this often

	Sweep *Sweep `json:"sweep,omitempty"`
	// Grid: further sweeps; the points are every combination of their
	// values with sweep's (sweep varies fastest).
	Grid []Sweep `json:"grid,omitempty"`
}

// Sweep varies one field over values; each value is one point.
type Sweep struct {
	Key    string `json:"key"`
	Values []any  `json:"values"`
}

// DefaultNATMix is an assumption, not a measurement: 80% of NATed nodes
// behind endpoint-independent mappings (home routers), 20% behind
// symmetric ones (carrier-grade and enterprise NATs), as the old model had.
func DefaultNATMix() map[string]float64 {
	return map[string]float64{"port-restricted": 0.4, "masquerade": 0.25, "restricted-cone": 0.1, "full-cone": 0.05, "symmetric": 0.2}
}

// Defaults returns the base every preset starts from.
func Defaults() Config {
	return Config{Model: "lookup", Nodes: 10000, Seed: 1, K: 20, Alpha: 10, Paths: 1, Lookups: 2000,
		LookupRate: 100, RPCTimeoutMs: 3000, ServiceUs: 50, RPCBytes: 1500, AttackerCPUS: 3.15e7,
		Adversary: AdvFake, EclipseTargets: 100, TablePolicy: "random",
		Churn: "weibull", SessionMedianS: 7200, WeibullShape: 0.5, Availability: 0.5, RefreshS: 600,
		PublicShare: 0.2, NATMix: DefaultNATMix(), PacketLoss: 0.01, PunchAttempts: 3, PunchTimeoutMs: 5000,
		PunchRetries: 1, PunchRetryS: 60, BirthdaySockets: 256, BirthdayProbes: 1024, BirthdayPPS: 100, Relays: 3, DHTServers: "public", Pairs: 5000,
		ConnectRate: 200, RootCapacity: 100, KeepaliveBytesS: 8,
		Load: 0.9, CentralShare: 0.1, MaxEvents: 3e8, Stations0: 20,
		Community: 40, InDegree: 8, OutDegree: 1, Affinity: 0.5, Broadcasts: 200, ReplicationLimit: 32,
		Social:         social.DefaultSocialParams(),
		ContactsPerMin: 1, Partners: 8, NewContactsPerMin: 0.1, Active: 10000, LinkIdleS: bounds.DefaultLinkIdle.Seconds(), LinkRTTs: 3,
		DurationS: 1800, WarmupS: 600, SampleS: 60}
}

//go:embed presets/*.json
var presetFS embed.FS

// PresetNames lists the embedded presets.
func PresetNames() []string {
	ents, _ := fs.ReadDir(presetFS, "presets")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	return out
}

// PresetJSON returns the embedded config file of a preset.
func PresetJSON(name string) ([]byte, error) {
	b, err := presetFS.ReadFile("presets/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("sim: no preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	return b, nil
}

// LoadPreset returns the config of a named preset over Defaults.
func LoadPreset(name string) (Config, error) {
	b, err := PresetJSON(name)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(b)
}

// ParseConfig reads a JSON config over Defaults; unknown fields are errors.
func ParseConfig(b []byte) (Config, error) {
	c := Defaults()
	c.NATMix = nil // a given mix replaces the default one (JSON would merge maps)
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return c, fmt.Errorf("sim: config: %w", err)
	}
	if c.NATMix == nil {
		c.NATMix = DefaultNATMix()
	}
	return c, c.Validate()
}

// Validate checks ranges.
func (c *Config) Validate() error {
	switch {
	case !slices.Contains(Models(), c.Model):
		return fmt.Errorf("sim: config: unknown model %q (have %s)", c.Model, strings.Join(Models(), ", "))
	case c.Nodes < 2 || c.Nodes > 1<<28:
		return fmt.Errorf("sim: config: nodes %d not in 2..2^28", c.Nodes)
	case c.K < 1 || c.Alpha < 1 || c.Paths < 1 || c.Lookups < 0:
		return fmt.Errorf("sim: config: k, alpha, paths must be positive")
	case c.SybilShare < 0 || c.SybilShare >= 1, c.PublicShare < 0 || c.PublicShare > 1,
		c.PacketLoss < 0 || c.PacketLoss > 1, c.Availability <= 0 || c.Availability > 1:
		return fmt.Errorf("sim: config: shares must be in [0,1]")
	case c.EclipseShare < 0 || c.EclipseShare > 1 || c.EclipseTargets < 1:
		return fmt.Errorf("sim: config: eclipse_share must be in [0,1], eclipse_targets positive")
	case c.TablePolicy != "random" && c.TablePolicy != "oldest":
		return fmt.Errorf("sim: config: table_policy %q: want random or oldest", c.TablePolicy)
	case c.DialRTTs < 0:
		return fmt.Errorf("sim: config: dial_rtts must be >= 0")
	case c.Origins < 0:
		return fmt.Errorf("sim: config: origins must be >= 0")
	case c.DHTServers != "public" && c.DHTServers != "all":
		return fmt.Errorf("sim: config: dht_servers %q: want public or all", c.DHTServers)
	case c.Churn != "weibull" && c.Churn != "exponential":
		return fmt.Errorf("sim: config: churn %q: want weibull or exponential", c.Churn)
	case c.LookupRate <= 0 || c.RefreshS <= 0 || c.SessionMedianS <= 0:
		return fmt.Errorf("sim: config: rates and durations must be positive")
	case c.Model == "lan" && (c.Partners < 1 || c.ContactsPerMin < 0 || c.NewContactsPerMin < 0 || c.Active < 0 || c.MaxKnown < 0 || c.LinkRTTs < 0 || c.LinkIdleS < 0):
		return fmt.Errorf("sim: config: lan: partners must be >= 1; contacts_per_min, new_contacts_per_min, active, max_known, link_rtts, link_idle_s >= 0")
	case c.Model == "lan" && c.ContactSkew != 0 && c.ContactSkew <= 1:
		return fmt.Errorf("sim: config: lan: contact_skew %v: want 0 (uniform) or a Zipf exponent > 1", c.ContactSkew)
	case c.Model == "lan" && (c.DurationS <= 0 || c.WarmupS < 0 || c.WarmupS >= c.DurationS || c.SampleS < bounds.TickEvery.Seconds()):
		return fmt.Errorf("sim: config: lan: want 0 <= warmup_s < duration_s and sample_s >= %v", bounds.TickEvery.Seconds())
	}
	if _, err := advCode(c.Adversary); err != nil {
		return fmt.Errorf("sim: config: %w", err)
	}
	if err := validateNATMix(c.NATMix); err != nil {
		return fmt.Errorf("sim: config: %w", err)
	}
	if err := c.Social.Validate(); err != nil {
		return fmt.Errorf("sim: config: %w", err)
	}
	return nil
}

// Set assigns a field by JSON name (dotted for nested fields). The value is
// parsed as JSON (numbers, true/false, lists) or else taken as a string.
func (c *Config) Set(key, value string) error {
	var v any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		v = value
	}
	return c.SetValue(key, v)
}

// SetValue assigns a decoded JSON value to the field named key.
func (c *Config) SetValue(key string, v any) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	parts := strings.Split(key, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		sub, ok := cur[p].(map[string]any)
		if !ok {
			return fmt.Errorf("sim: config: no field %q", key)
		}
		cur = sub
	}
	last := parts[len(parts)-1]
	if _, ok := cur[last]; !ok && parts[0] != "nat_mix" && last != "sweep" && last != "refresh_values" && last != "root_capacity_shares" && last != "central_shares" && last != "seeds" &&
		last != "block_counts" && last != "design" {
		return fmt.Errorf("sim: config: no field %q", key)
	}
	cur[last] = v
	b, _ = json.Marshal(m)
	nc := Config{}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&nc); err != nil {
		return fmt.Errorf("sim: config: %s: %w", key, err)
	}
	*c = nc
	return nil
}

// ParseSweep parses "key=v1,v2,...".
func ParseSweep(s string) (*Sweep, error) {
	key, vals, ok := strings.Cut(s, "=")
	if !ok || key == "" || vals == "" {
		return nil, fmt.Errorf("sim: sweep %q: want key=v1,v2,...", s)
	}
	sw := &Sweep{Key: key}
	for _, v := range strings.Split(vals, ",") {
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			sw.Values = append(sw.Values, f)
		} else if v == "true" || v == "false" {
			sw.Values = append(sw.Values, v == "true")
		} else {
			sw.Values = append(sw.Values, v)
		}
	}
	return sw, nil
}

// Points expands the sweep (and grid) into one config per point.
func (c Config) Points() ([]Config, error) {
	if c.Sweep == nil || len(c.Sweep.Values) == 0 {
		p := c
		p.Sweep, p.Grid = nil, nil
		return []Config{p}, nil
	}
	var out []Config
	for _, combo := range c.Combos() {
		p := c
		p.Sweep, p.Grid = nil, nil
		p.RefreshValues = slices.Clone(c.RefreshValues)
		p.RootShares = slices.Clone(c.RootShares)
		p.BlockCounts = slices.Clone(c.BlockCounts)
		p.CentralShares = slices.Clone(c.CentralShares)
		for _, kv := range combo {
			if err := p.SetValue(kv.Key, kv.Value); err != nil {
				return nil, err
			}
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("sim: sweep %v: %w", combo, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// KeyValue is one swept key's value at a point.
type KeyValue struct {
	Key   string
	Value any
}

// SweepKeys lists the swept keys: sweep's, then the grid's.
func (c Config) SweepKeys() []string {
	if c.Sweep == nil {
		return nil
	}
	keys := []string{c.Sweep.Key}
	for _, g := range c.Grid {
		keys = append(keys, g.Key)
	}
	return keys
}

// Combos lists the points' key values in point order: sweep varies
// fastest, the last grid key slowest.
func (c Config) Combos() [][]KeyValue {
	if c.Sweep == nil || len(c.Sweep.Values) == 0 {
		return nil
	}
	all := append([]Sweep{*c.Sweep}, c.Grid...)
	var out [][]KeyValue
	var rec func(level int, prefix []KeyValue)
	rec = func(level int, prefix []KeyValue) {
		if level < 0 {
			cmb := make([]KeyValue, len(all))
			for i := range all {
				cmb[i] = prefix[len(all)-1-i]
			}
			out = append(out, cmb)
			return
		}
		for _, v := range all[level].Values {
			rec(level-1, append(prefix, KeyValue{all[level].Key, v}))
		}
	}
	rec(len(all)-1, nil)
	return out
}

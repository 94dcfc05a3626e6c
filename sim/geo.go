package sim

import (
	"math"
	"math/rand/v2"
)

// metro is a population centre of the synthetic geography.
type metro struct {
	name     string
	lat, lon float64 // degrees
	weight   float64 // relative share of nodes
}

// metros: roughly Internet users per region around 2024, lumped to 20 hubs.
var metros = []metro{
	{"new-york", 40.7, -74.0, 6}, {"chicago", 41.9, -87.6, 3}, {"los-angeles", 34.1, -118.2, 4},
	{"sao-paulo", -23.6, -46.6, 5}, {"mexico-city", 19.4, -99.1, 3}, {"london", 51.5, -0.1, 5},
	{"frankfurt", 50.1, 8.7, 5}, {"paris", 48.9, 2.4, 4}, {"moscow", 55.8, 37.6, 4},
	{"lagos", 6.5, 3.4, 3}, {"johannesburg", -26.2, 28.0, 2}, {"cairo", 30.0, 31.2, 3},
	{"mumbai", 19.1, 72.9, 8}, {"singapore", 1.35, 103.8, 4}, {"jakarta", -6.2, 106.8, 5},
	{"shanghai", 31.2, 121.5, 10}, {"beijing", 39.9, 116.4, 8}, {"tokyo", 35.7, 139.7, 5},
	{"seoul", 37.6, 127.0, 3}, {"sydney", -33.9, 151.2, 2},
}

const (
	earthRadiusKm  = 6371.0
	fibreKmPerMs   = 200.0 // light in fibre: 2/3 c
	routeInflation = 1.3
	spreadKm       = 300.0
	accessMedianMs = 4.0
	accessSigma    = 0.6
)

// Geo places nodes on the synthetic geography and gives pairwise RTTs.
type Geo struct {
	lat, lon []float32 // radians
	access   []float32 // one-way access latency, ms
	metro    []uint8
}

// NewGeo places n nodes.
func NewGeo(n int, r *rand.Rand) *Geo {
	g := &Geo{lat: make([]float32, n), lon: make([]float32, n), access: make([]float32, n), metro: make([]uint8, n)}
	var total float64
	for _, m := range metros {
		total += m.weight
	}
	for i := 0; i < n; i++ {
		x := r.Float64() * total
		mi := 0
		for ; mi < len(metros)-1 && x >= metros[mi].weight; mi++ {
			x -= metros[mi].weight
		}
		m := metros[mi]
		dlat := r.NormFloat64() * spreadKm / earthRadiusKm
		dlon := r.NormFloat64() * spreadKm / earthRadiusKm / math.Max(0.2, math.Cos(m.lat*math.Pi/180))
		g.lat[i] = float32(m.lat*math.Pi/180 + dlat)
		g.lon[i] = float32(m.lon*math.Pi/180 + dlon)
		g.access[i] = float32(accessMedianMs * math.Exp(accessSigma*r.NormFloat64()))
		g.metro[i] = uint8(mi)
	}
	return g
}

// N is the number of nodes placed.
func (g *Geo) N() int { return len(g.lat) }

// Metro returns the index of node i's metro.
func (g *Geo) Metro(i int32) int { return int(g.metro[i]) }

// DistanceKm is the great-circle distance between nodes a and b.
func (g *Geo) DistanceKm(a, b int32) float64 {
	la1, la2 := float64(g.lat[a]), float64(g.lat[b])
	dlat, dlon := la2-la1, float64(g.lon[b]-g.lon[a])
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h)))
}

// RTT is the round-trip time between nodes a and b in nanoseconds.
func (g *Geo) RTT(a, b int32) int64 {
	if a == b {
		return 0
	}
	ms := 2*g.DistanceKm(a, b)/fibreKmPerMs*routeInflation + 2*float64(g.access[a]+g.access[b])
	return int64(ms * 1e6)
}

// metroRTT is the model RTT between two metro centres, without access
// latency, in ms (for documentation and tests).
func metroRTT(a, b string) float64 {
	var ma, mb metro
	for _, m := range metros {
		if m.name == a {
			ma = m
		}
		if m.name == b {
			mb = m
		}
	}
	g := &Geo{lat: []float32{float32(ma.lat * math.Pi / 180), float32(mb.lat * math.Pi / 180)},
		lon: []float32{float32(ma.lon * math.Pi / 180), float32(mb.lon * math.Pi / 180)}, access: []float32{0, 0}}
	return float64(g.RTT(0, 1)) / 1e6
}

package vswitch

import (
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/social"
)

// SocialOf returns the social switching parameters of a network with
// broadcast parameters p (other fields at their defaults).
func SocialOf(p netrec.BroadcastParams) social.SocialParams {
	s := social.DefaultSocialParams()
	s.Fanout, s.ForwardFanout, s.TTL, s.Budget = p.Fanout, p.ForwardFanout, p.Hops, p.Budget
	return s
}

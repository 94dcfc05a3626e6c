package overlay

// Temporary aliases while overlay's files move to their own packages.

import "github.com/kadlan/kadlan/overlay/social"

type BroadcastID = social.BroadcastID
type Social[K comparable] = social.Social[K]
type SocialDecision[K comparable] = social.SocialDecision[K]
type SocialHeader = social.SocialHeader
type SocialParams = social.SocialParams
type SocialSend[K comparable] = social.SocialSend[K]

const MaxAnnouncedGroups = social.MaxAnnouncedGroups
const SocialHeaderMaxLen = social.SocialHeaderMaxLen
const SocialHeaderMinLen = social.SocialHeaderMinLen
const SocialMaxVisited = social.SocialMaxVisited
const SocialSigLen = social.SocialSigLen

var DecodeGroupAnnouncement = social.DecodeGroupAnnouncement
var DecodeSocialHeader = social.DecodeSocialHeader
var DefaultSocialParams = social.DefaultSocialParams
var EncodeGroupAnnouncement = social.EncodeGroupAnnouncement
var SocialMix = social.SocialMix
var VisitHash = social.VisitHash
var ErrSocialHeader = social.ErrSocialHeader

func NewSocial[K comparable](self K, hash func(K) uint64, p SocialParams) (*Social[K], error) {
	return social.NewSocial(self, hash, p)
}

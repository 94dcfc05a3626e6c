package overlay

// Temporary aliases while overlay's files move to their own packages.

import "github.com/kadlan/kadlan/overlay/vswitch"

type BroadcastCheck = vswitch.BroadcastCheck
type Counters = vswitch.Counters
type MACTable = vswitch.MACTable
type Member = vswitch.Member
type MemberInfo = vswitch.MemberInfo
type Membership = vswitch.Membership
type Message = vswitch.Message
type MsgKind = vswitch.MsgKind
type NetworkInfo = vswitch.NetworkInfo
type OriginLimiter = vswitch.OriginLimiter
type Output = vswitch.Output
type OutputKind = vswitch.OutputKind
type Reader = vswitch.Reader
type ReplayFilter = vswitch.ReplayFilter
type ReplayVerdict = vswitch.ReplayVerdict
type Status = vswitch.Status
type Switch = vswitch.Switch
type SwitchConfig = vswitch.SwitchConfig
type SwitchMember = vswitch.SwitchMember

const BadSignatureBurst = vswitch.BadSignatureBurst
const BadSignatureRate = vswitch.BadSignatureRate
const DefaultBroadcastBurst = vswitch.DefaultBroadcastBurst
const DefaultBroadcastRate = vswitch.DefaultBroadcastRate
const DefaultBroadcastWindow = vswitch.DefaultBroadcastWindow
const DefaultMaxOrigins = vswitch.DefaultMaxOrigins
const GroupAnnouncementBurst = vswitch.GroupAnnouncementBurst
const GroupAnnouncementRate = vswitch.GroupAnnouncementRate
const MaxMessageBody = vswitch.MaxMessageBody
const MaxPending = vswitch.MaxPending
const MsgBroadcast = vswitch.MsgBroadcast
const MsgFrame = vswitch.MsgFrame
const MsgFrameGSO = vswitch.MsgFrameGSO
const MsgGroups = vswitch.MsgGroups
const MsgHeaderLen = vswitch.MsgHeaderLen
const MsgRecord = vswitch.MsgRecord
const ProtocolID = vswitch.ProtocolID
const ReplayFresh = vswitch.ReplayFresh
const ReplayFull = vswitch.ReplayFull
const ReplaySeen = vswitch.ReplaySeen
const ReplayStale = vswitch.ReplayStale
const ReplayWindowBits = vswitch.ReplayWindowBits
const StatusExpired = vswitch.StatusExpired
const StatusOK = vswitch.StatusOK
const StatusPending = vswitch.StatusPending
const StatusRevoked = vswitch.StatusRevoked
const StatusUnauthorized = vswitch.StatusUnauthorized
const ToLocal = vswitch.ToLocal
const ToPeer = vswitch.ToPeer

var AppendMessage = vswitch.AppendMessage
var BroadcastDigest = vswitch.BroadcastDigest
var DecodeMessage = vswitch.DecodeMessage
var GroupOf = vswitch.GroupOf
var NewMACTable = vswitch.NewMACTable
var NewMembership = vswitch.NewMembership
var NewOriginLimiter = vswitch.NewOriginLimiter
var NewReader = vswitch.NewReader
var NewReplayFilter = vswitch.NewReplayFilter
var NewSwitch = vswitch.NewSwitch
var SignBroadcast = vswitch.SignBroadcast
var SocialOf = vswitch.SocialOf
var UnmarshalState = vswitch.UnmarshalState
var VerifyBroadcast = vswitch.VerifyBroadcast
var ErrMessage = vswitch.ErrMessage
var ErrWrongNetwork = vswitch.ErrWrongNetwork

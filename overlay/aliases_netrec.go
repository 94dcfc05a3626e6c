package overlay

// Temporary aliases while overlay's files move to their own packages.

import "github.com/kadlan/kadlan/overlay/netrec"

type Announcement = netrec.Announcement
type BroadcastParams = netrec.BroadcastParams
type Certificate = netrec.Certificate
type Definition = netrec.Definition
type Hello = netrec.Hello
type IPv4Claim = netrec.IPv4Claim
type NetworkID = netrec.NetworkID
type Owner = netrec.Owner
type RecordKind = netrec.RecordKind
type RecordValidator = netrec.RecordValidator
type Revocation = netrec.Revocation
type RevokedEntry = netrec.RevokedEntry

const DefaultMTU = netrec.DefaultMTU
const KindAnnouncement = netrec.KindAnnouncement
const KindCertificate = netrec.KindCertificate
const KindDefinition = netrec.KindDefinition
const KindRevocation = netrec.KindRevocation
const MaxMTU = netrec.MaxMTU
const MaxNameLen = netrec.MaxNameLen
const MinMTU = netrec.MinMTU
const Namespace = netrec.Namespace
const NonceLen = netrec.NonceLen

var AnnouncementKey = netrec.AnnouncementKey
var AppendHello = netrec.AppendHello
var CertificateKey = netrec.CertificateKey
var ChooseIPv4 = netrec.ChooseIPv4
var ChooseIPv4Prefer = netrec.ChooseIPv4Prefer
var DecodeHello = netrec.DecodeHello
var DefinitionKey = netrec.DefinitionKey
var IPv4Candidate = netrec.IPv4Candidate
var IPv4Priority = netrec.IPv4Priority
var IPv6Prefix = netrec.IPv6Prefix
var IssueCertificate = netrec.IssueCertificate
var MemberIPv6 = netrec.MemberIPv6
var MemberMAC = netrec.MemberMAC
var MembersCID = netrec.MembersCID
var NewAnnouncement = netrec.NewAnnouncement
var NewDefinition = netrec.NewDefinition
var NewOwner = netrec.NewOwner
var NewRevocation = netrec.NewRevocation
var NextRevocation = netrec.NextRevocation
var ParseAnnouncement = netrec.ParseAnnouncement
var ParseCertificate = netrec.ParseCertificate
var ParseDefinition = netrec.ParseDefinition
var ParseKey = netrec.ParseKey
var ParseNetworkID = netrec.ParseNetworkID
var ParseRecord = netrec.ParseRecord
var ParseRevocation = netrec.ParseRevocation
var PeerHash = netrec.PeerHash
var ReadHello = netrec.ReadHello
var RevocationKey = netrec.RevocationKey
var DefaultBroadcast = netrec.DefaultBroadcast
var DefaultIPv4Pool = netrec.DefaultIPv4Pool
var ErrBadSignature = netrec.ErrBadSignature
var ErrExpired = netrec.ErrExpired
var ErrMalformed = netrec.ErrMalformed
var ErrRevoked = netrec.ErrRevoked

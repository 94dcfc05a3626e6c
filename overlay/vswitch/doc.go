// Package vswitch is the Ethernet switch of one kadlan network and the
// membership state that configures it, as pure state machines.
//
// A Switch is driven like etcd's raft RawNode:
//
//	outs := sw.HandleLocal(now, frame)        // frame read from the device
//	outs := sw.HandleRemote(now, from, msg)   // message read from a link
//	outs := sw.Tick(now)                      // every few seconds
//
// ToLocal outputs are written to the device, ToPeer outputs sent on the
// member's link. It answers ARP and NDP for members locally, learns and
// snoops, checks broadcasts' origin signatures (PendingVerify lets a caller
// verify outside its lock), refuses replays (ReplayFilter) and rate-limits
// each origin (OriginLimiter). A Switch is not safe for concurrent use.
//
// A Membership is what a node knows of a network: definition, own
// certificate, revocations, members; Status, addresses, Sync(switch) and
// the hello exchange (Hello, AcceptHello). MarshalState and UnmarshalState
// encode what must survive a restart; overlay writes it to disk.
//
// No I/O, no goroutines, no clock of its own: overlay's TestPurePackages
// checks it.
package vswitch

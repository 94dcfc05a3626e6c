// Package overlay is kadlan's virtual Ethernet without a controller: network
// identities and owner-signed records (definition, certificates,
// revocations, member announcements) with their kad-dht validators, address
// derivation (MAC, IPv6, IPv4), the Ethernet Switch as a pure state machine,
// the framing of frames on member links, bounded send queues, and the
// membership state of a joined network with its persistence.
//
// Everything here is free of network I/O: the daemon owns the libp2p streams,
// the DHT and the TAP device, and feeds this package bytes and time.
//
// # Usage
//
// The daemon builds one Switch per joined network and drives it from two
// loops, the way etcd's raft RawNode is driven:
//
//	sw := overlay.NewSwitch(overlay.SwitchConfig{Network: id, Self: self, SelfMAC: mac, ...})
//	// TAP reader:
//	for { n, _ := dev.Read(buf); for _, o := range sw.HandleLocal(time.Now(), buf[:n]) { dispatch(o) } }
//	// per member link reader:
//	for { m, _ := dec.Next(); for _, o := range sw.HandleRemote(time.Now(), from, m) { dispatch(o) } }
//
// where dispatch writes ToLocal outputs to the TAP and pushes ToPeer outputs
// onto that member's Queue, whose writer goroutine sends whole batches.
// A Switch is not safe for concurrent use: guard it with a mutex.
package overlay

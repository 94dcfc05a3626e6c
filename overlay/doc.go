// Package overlay is kadlan's virtual Ethernet without a controller: network
// identities and owner-signed records (definition, certificates,
// revocations, member announcements) with their kad-dht validator, address
// derivation (MAC, IPv6, IPv4), the Ethernet Switch as a pure state machine,
// implicit social switching for broadcast and multicast (Social), the
// framing of frames on member links, bounded send queues, the membership
// state of a joined network with its persistence, and an Engine that drives
// a Switch with a tap.Device and member streams.
//
// Everything except Engine is free of I/O: no sockets, no goroutines, no
// clock (callers pass the time), so tests and the simulator run the very
// code the daemon runs.
//
// # Records and the DHT
//
// A NetworkID is SHA-256 over the owner's Ed25519 key and a nonce, so every
// record carries the owner key and nonce and verifies on its own:
// Definition (Seq), Certificate (Issued, Expires, optional IPv4),
// Revocation (Seq, entries "member, certificates issued up to time T") and
// Announcement (signed by the member itself). Encodings are versioned,
// canonical binary; Parse* functions are strict and verify signatures.
// Register the validator with kad-dht:
//
//	kaddht.NamespacedValidator(overlay.Namespace, overlay.RecordValidator{})
//
// and store records under DefinitionKey, CertificateKey, RevocationKey and
// AnnouncementKey; members find each other as providers of MembersCID.
//
// # Joining and links
//
//	m := overlay.NewMembership(id, self, now)     // or LoadMemberships(stateDir)
//	m.SetDefinition(def); m.AddCertificate(cert)  // from the DHT
//	m.Status(now)                                 // ok, pending, unauthorized, expired, revoked
//	m.Save(stateDir)                              // atomic, 0600
//
//	cfg := m.SwitchConfig(now); cfg.Key = key     // the node's key signs its broadcasts
//	sw, _ := overlay.NewSwitch(cfg)
//	eng := overlay.NewEngine(sw, dev, overlay.EngineConfig{NeedLink: dial, OnRecord: store})
//
// A link is one libp2p stream per member and network (ProtocolID). The
// opener writes AppendHello(m.Hello(ann)); the acceptor reads ReadHello
// and calls m.AcceptHello; then both sides update the switch
// (eng.Update(func(sw){ m.Sync(sw, now) })) and hand the stream to
// eng.AddLink(peer, stream, outbound). Call m.Sync through eng.Update after
// every record change and periodically (every few seconds): it removes
// members that are no longer authorized, and Update closes their links,
// which bounds how long a revoked member keeps access.
//
// # Offload
//
// With a Linux TAP opened with tap.Config{VnetHdr: true, Offload:
// unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6} and
// EngineConfig.VnetHdr, the kernel hands over TCP super-frames of up to
// 64 KiB; the Engine sends them whole (MsgFrameGSO) and the receiving
// Engine gives them whole to its own offload TAP, or segments them in
// software (ether.SegmentTCP) for any other device. Every node
// understands MsgFrameGSO, so no negotiation is needed.
//
// # Driving a Switch without Engine
//
// A Switch is driven like etcd's raft RawNode:
//
//	outs := sw.HandleLocal(now, frame)        // frame read from the device
//	outs := sw.HandleRemote(now, from, msg)   // message read from a link
//	outs := sw.Tick(now)                      // every few seconds
//
// ToLocal outputs are written to the device, ToPeer outputs pushed onto the
// member's Queue (Queue.Push copies), whose writer goroutine writes whole
// batches (Queue.Take). Outputs are valid until the next call.
// A Switch is not safe for concurrent use.
package overlay

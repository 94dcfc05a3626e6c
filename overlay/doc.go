// Package overlay drives kadlan's virtual Ethernet: an Engine joins one
// network's Switch (overlay/vswitch) to a tap.Device and to member links,
// and persistence keeps joined networks across restarts. The logic lives in
// pure packages below it: overlay/netrec (network records and certificates),
// overlay/social (implicit social switching) and overlay/vswitch (the switch
// and the membership state).
//
// # Wiring
//
//	m := vswitch.NewMembership(id, self, now)     // or overlay.LoadMemberships(stateDir)
//	m.SetDefinition(def); m.AddCertificate(cert)  // records from the DHT
//	overlay.SaveMembership(stateDir, m)           // atomic, 0600
//
//	cfg := m.SwitchConfig(now); cfg.Key = key     // the node's key signs its broadcasts
//	sw, _ := vswitch.NewSwitch(cfg)
//	eng := overlay.New(dev, transport, sw, overlay.EngineConfig{Hello: hello, OnLink: protect, OnRecord: store})
//
// As in wireguard-go's NewDevice(tun, bind, logger), the Engine sees only a
// device and a Transport (dht.Links over libp2p). When the switch sends to a
// member without a link, or the daemon asks (Connect), the Engine dials it
// itself: DialLink writes the hello first; the acceptor reads it
// (netrec.ReadHello), checks it (Membership.AcceptHello) and hands the
// stream to AddLink. Call m.Sync through eng.Update after every record
// change and periodically: members that are no longer authorized are
// removed and their links closed, which bounds how long a revoked member
// keeps access.
//
// # Goroutines
//
// The Engine owns its device reader, ticker, link readers and writers,
// dials and record worker; Close cancels and joins them all. Callbacks
// (Hello, OnLink, OnRecord) run without the Engine's lock.
//
// # Offload
//
// With a device that carries a virtio-net header (tap.Offloader) and
// EngineConfig.VnetHdr, the kernel hands over TCP super-frames of up to
// 64 KiB; the Engine sends them whole (MsgFrameGSO) after checkGSO, and the
// receiving Engine gives them whole to its own offload device or segments
// them in software (ether.SegmentTCP), outside its lock.
package overlay

package vswitch

import "github.com/kadlan/kadlan/overlay/netrec/netrectest"

var (
	t0          = netrectest.T0
	testKey     = netrectest.Key
	testDef     = netrectest.Def
	testPeers   = netrectest.Peers
	testPeerKey = netrectest.PeerKey
)

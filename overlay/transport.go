package overlay

import (
	"context"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Transport opens member links: the Engine dials by itself when the switch
// sends to a member without a link (and when told to Connect). The node's
// libp2p side implements it (dht.Links): finding the member, relays, hole
// punching, the choice of TCP or QUIC.
type Transport interface {
	// DialLink connects to member p, opens a link stream and writes hello
	// on it first. It returns when the link is ready or has failed (its
	// own timeout, or ctx: the Engine cancels it on Close).
	DialLink(ctx context.Context, p peer.ID, hello []byte) (io.ReadWriteCloser, error)
}

package e2e

import (
	"errors"
	"testing"
)

func TestErrKind(t *testing.T) {
	for in, want := range map[string]string{
		"kadlan ping -c 1 --timeout 10s 12D3KooWGHbnhcDoybVZtVqx6Du7GCL4VKDrViBgx6hVveNmPKJg --json: exit status 1: kadlan: connecting to 12D3KooWGHbnhcDoybVZtVqx6Du7GCL4VKDrViBgx6hVveNmPKJg: routing: not found": "kadlan: connecting to ID: routing: not found",
		"find: routing: not found (aUiMNe named it with [/ip4/192.0.0.141/udp/56694/quic-v1])":                                                                                                                      "find: routing: not found",
		"PEER_NOT_FOUND: Peer not found": "PEER_NOT_FOUND: Peer not found",
	} {
		if got := errKind(errors.New(in)); got != want {
			t.Errorf("errKind(%q) = %q, want %q", in, got, want)
		}
	}
}

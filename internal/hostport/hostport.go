// Package hostport checks the HOST:PORT values of the daemon's own HTTP
// listeners (--metrics, --web).
package hostport

import (
	"fmt"
	"net"
	"strconv"
)

// Split splits addr into host and port, with errors that name flag and
// show example (say "127.0.0.1:9464"). The port must be a number from 0 to
// 65535; the host may be empty (the caller decides).
func Split(flag, addr, example string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("%s %q: want HOST:PORT, such as %s", flag, addr, example)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", "", fmt.Errorf("%s %q: port %q is not a number from 0 to 65535", flag, addr, port)
	}
	return host, port, nil
}

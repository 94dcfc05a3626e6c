// Command udpcast sends or receives one UDP datagram, for the broadcast
// end-to-end tests.
//
//	udpcast send ADDR:PORT MESSAGE [SRCIP]   (ADDR may be a broadcast address;
//	                                          SRCIP picks the interface for 255.255.255.255)
//	udpcast recv PORT TIMEOUT                (prints the first datagram, exit 1 on timeout)
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/kadlan/kadlan/internal/udpcast"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "udpcast:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) >= 3 && len(args) <= 4 && args[0] == "send":
		src := ""
		if len(args) == 4 {
			src = args[3]
		}
		return udpcast.Send(args[1], args[2], src)
	case len(args) == 3 && args[0] == "recv":
		port, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		d, err := time.ParseDuration(args[2])
		if err != nil {
			return err
		}
		msg, err := udpcast.Recv(port, d)
		if err != nil {
			return err
		}
		fmt.Println(msg)
		return nil
	}
	return fmt.Errorf("usage: udpcast send ADDR:PORT MSG [SRCIP] | udpcast recv PORT TIMEOUT")
}

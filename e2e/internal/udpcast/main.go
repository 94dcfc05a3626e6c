// Command udpcast sends or receives one UDP datagram, for the broadcast
// end-to-end tests (no socat or python needed on the test machine).
//
//	udpcast send ADDR:PORT MESSAGE [SRCIP]   (ADDR may be a broadcast address;
//	                                          SRCIP picks the interface for 255.255.255.255)
//	udpcast recv PORT TIMEOUT        (prints the first datagram, exit 1 on timeout)
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 4 && !(len(os.Args) == 5 && os.Args[1] == "send") {
		fmt.Fprintln(os.Stderr, "usage: udpcast send ADDR:PORT MSG | udpcast recv PORT TIMEOUT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "send":
		src := ""
		if len(os.Args) == 5 {
			src = os.Args[4]
		}
		if err := send(os.Args[2], os.Args[3], src); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "recv":
		port, _ := strconv.Atoi(os.Args[2])
		d, err := time.ParseDuration(os.Args[3])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		msg, err := recv(port, d)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(msg)
	default:
		os.Exit(2)
	}
}

func send(addr, msg, src string) error {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	var la *net.UDPAddr
	if src != "" {
		la = &net.UDPAddr{IP: net.ParseIP(src)}
	}
	c, err := net.ListenUDP("udp4", la)
	if err != nil {
		return err
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1) })
	_, err = c.WriteToUDP([]byte(msg), ua)
	return err
}

func recv(port int, d time.Duration) (string, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s from %s", buf[:n], from.IP), nil
}

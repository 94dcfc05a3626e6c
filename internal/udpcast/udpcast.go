// Package udpcast sends and receives single UDP datagrams, broadcast
// included, for the end-to-end tests and the demo (so that neither needs
// socat or python on the machine).
package udpcast

import (
	"fmt"
	"net"
	"syscall"
	"time"
)

// Send sends msg to addr ("IP:PORT", which may be a broadcast address).
// src, if not empty, is the source IP: for 255.255.255.255 it picks the
// interface the datagram leaves through.
func Send(addr, msg, src string) error {
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

// Recv waits up to d for one datagram on port and returns "MSG from IP".
func Recv(port int, d time.Duration) (string, error) {
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

package dnszone

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/kadlan/kadlan/internal/group"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Server limits.
const (
	// PerSourceRate and PerSourceBurst bound the queries one source
	// address gets answered (beyond: dropped, not answered).
	PerSourceRate  = 50 // per second
	PerSourceBurst = 100
	// MaxTCPConns bounds the TCP connections served at once; more are
	// closed at once.
	MaxTCPConns = 16
	// TCPIdle closes a TCP connection that sent no complete query for
	// that long.
	TCPIdle = 10 * time.Second
)

// Server answers a Zone's queries on UDP and TCP sockets.
type Server struct {
	zone *Zone
	lim  *Limiter // shared by every socket the server serves
	// Logf reports errors that end a socket (not per query); may be nil.
	logf func(string, ...any)
}

// NewServer returns a server for z (logf may be nil).
func NewServer(z *Zone, logf func(string, ...any)) *Server {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Server{zone: z, lim: NewLimiter(PerSourceRate, PerSourceBurst, 4096, time.Now), logf: logf}
}

// Listen opens a UDP and a TCP socket on ap. The address need not be
// configured yet (IP_FREEBIND): a TAP's address may still be tentative.
func Listen(ap netip.AddrPort) (net.PacketConn, net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if ap.Addr().Is4() {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", ap.String())
	if err != nil {
		return nil, nil, err
	}
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port) // ap's, or the one chosen for 0
	ln, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(ap.Addr(), port).String())
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, ln, nil
}

// Serve answers on pc and ln (either may be nil) until ctx ends, then
// closes them and returns once every goroutine it started has ended. It
// may be called for several socket pairs at once (IPv4 and IPv6).
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) {
	var g group.Group
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			if pc != nil {
				pc.Close()
			}
			if ln != nil {
				ln.Close()
			}
		})
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	if pc != nil {
		g.Go(func() { s.serveUDP(pc) })
	}
	if ln != nil {
		g.Go(func() { s.serveTCP(ctx, ln) })
	}
	<-ctx.Done()
	closeAll()
	g.Close()
}

func (s *Server) serveUDP(pc net.PacketConn) {
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.logf("dns: udp: %v", err)
			}
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || !s.lim.Allow(ua.AddrPort().Addr().Unmap()) {
			continue
		}
		out, ok := s.handle(buf[:n], dns.MinMsgSize)
		if ok {
			pc.WriteTo(out, from)
		}
	}
}

// handle parses one query and packs the answer, truncated to max bytes
// (at least 512; more if the query's EDNS0 asks). ok is false when the
// input is not worth an answer (not a DNS message, or a response).
func (s *Server) handle(b []byte, max int) ([]byte, bool) {
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil || req.Response {
		return nil, false
	}
	resp := s.zone.Answer(req)
	if o := req.IsEdns0(); o != nil && int(o.UDPSize()) > max {
		max = int(o.UDPSize())
	}
	resp.Truncate(max)
	out, err := resp.Pack()
	if err != nil {
		return nil, false
	}
	return out, true
}

func (s *Server) serveTCP(ctx context.Context, ln net.Listener) {
	var conns group.Group
	defer conns.Close()
	sem := make(chan struct{}, MaxTCPConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.logf("dns: tcp: %v", err)
			}
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		if !conns.Go(func() {
			defer func() { <-sem }()
			defer stop()
			defer c.Close()
			s.serveConn(c)
		}) {
			stop()
			c.Close()
			<-sem
		}
	}
}

func (s *Server) serveConn(c net.Conn) {
	var src netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		src = ta.AddrPort().Addr().Unmap()
	}
	var lb [2]byte
	buf := make([]byte, dns.MaxMsgSize)
	for {
		c.SetDeadline(time.Now().Add(TCPIdle))
		if _, err := io.ReadFull(c, lb[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lb[:]))
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		if !s.lim.Allow(src) {
			return
		}
		out, ok := s.handle(buf[:n], dns.MaxMsgSize)
		if !ok {
			return
		}
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out)))); err != nil {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

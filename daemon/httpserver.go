package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// httpServer serves one handler on its own TCP listener (--metrics,
// --web); Run listens early, so that a port in use stops the daemon before
// anything starts, serves once the handler exists, and closes it on
// shutdown.
type httpServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan error
	once sync.Once
}

// listenHTTP listens on addr; flag names the option in the error.
func listenHTTP(flag, addr string) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	return &httpServer{ln: ln}, nil
}

// serve starts srv (its Handler set, timeouts and all) on the listener, on
// a goroutine that close waits for.
func (s *httpServer) serve(srv *http.Server) {
	s.srv = srv
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(s.ln) }()
}

// close stops the server and waits for it and for the requests in flight,
// which it cuts off after wait. It is idempotent.
func (s *httpServer) close(wait time.Duration) error {
	var err error
	s.once.Do(func() {
		if s.srv == nil {
			err = s.ln.Close()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	})
	return err
}

// addr is where the server listens.
func (s *httpServer) addr() string { return s.ln.Addr().String() }

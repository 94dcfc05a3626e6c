// Package group gives goroutines an owner: a Group starts them, and Close
// refuses new ones and waits for those running. Every goroutine that kadlan
// starts for a network, a link or a request belongs to one.
package group

import "sync"

// Group owns goroutines. The zero value is ready to use.
type Group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f on a new goroutine owned by g, unless g is closed; it reports
// whether f was started.
func (g *Group) Go(f func()) bool {
	if !g.Enter() {
		return false
	}
	go func() {
		defer g.Leave()
		f()
	}()
	return true
}

// Enter registers work done on a goroutine that g did not start (a
// callback on someone else's goroutine), so that Close waits for it. It
// returns false, and the caller must not go on, when g is closed. Each
// successful Enter needs one Leave.
func (g *Group) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// Leave ends work registered with Enter.
func (g *Group) Leave() { g.wg.Done() }

// Close refuses new goroutines and waits for the running ones. The caller
// first cancels whatever they wait on. Close is idempotent.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

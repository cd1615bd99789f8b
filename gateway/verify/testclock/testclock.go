// Package testclock is the clock the gateway's tests move by hand: handed to
// whatever takes a `func() time.Time` (the verifier's monotonic clock, the
// discovery cache, the certificate reloader) so that no test sleeps for time
// to pass.
package testclock

import (
	"sync"
	"time"
)

// Clock reads the same time until the test advances it; safe to read from the
// goroutines of the code under test while the test moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// At is a clock that reads t.
func At(t time.Time) *Clock { return &Clock{t: t} }

// Now is the time the clock reads (pass the method value, clock.Now).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

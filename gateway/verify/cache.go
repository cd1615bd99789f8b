package verify

import "sync"

// tokenCache holds verified claims, each until a moment given per entry
// (exp + leeway), at most capacity of them: when full, the oldest goes.
// What a hit must still pass (time claims, revocation) is the caller's.
type tokenCache struct {
	mu       sync.Mutex
	capacity int
	entries  map[string]cached
	order    []string // insertion order; order[head:] are the live keys' slots
	head     int
}

type cached struct {
	claims *Claims
	until  float64
}

func newTokenCache(capacity int) *tokenCache {
	return &tokenCache{capacity: capacity, entries: make(map[string]cached)}
}

func (c *tokenCache) get(token string, now float64) *Claims {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[token]
	if !ok || now >= e.until {
		return nil
	}
	return e.claims
}

func (c *tokenCache) put(token string, claims *Claims, until float64) {
	if c.capacity <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[token]; ok {
		c.entries[token] = cached{claims, until}
		return
	}
	for len(c.entries) >= c.capacity {
		oldest := c.order[c.head]
		c.order[c.head] = ""
		c.head++
		delete(c.entries, oldest)
	}
	if c.head > len(c.order)/2 { // compact now and then, so order stays bounded
		c.order = append([]string(nil), c.order[c.head:]...)
		c.head = 0
	}
	c.entries[token] = cached{claims, until}
	c.order = append(c.order, token)
}

// evictExpired drops the entries whose time has passed.
func (c *tokenCache) evictExpired(now float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := c.order[:0]
	for _, token := range c.order[c.head:] {
		if e, ok := c.entries[token]; ok && now < e.until {
			live = append(live, token)
		} else {
			delete(c.entries, token)
		}
	}
	clear(c.order[len(live):])
	c.order, c.head = live, 0
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

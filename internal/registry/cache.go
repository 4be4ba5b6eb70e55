package registry

import (
	"crypto/subtle"
	"sync"
	"time"
)

// credCache remembers successful password verifications. It holds at most one
// entry per username (a thing has one valid password at a time), so purging a
// username is a single map delete.
type credCache struct {
	ttl time.Duration // <= 0 disables the cache
	max int

	mu    sync.Mutex
	epoch uint64 // bumped by every purge
	m     map[string]cacheEntry
}

type cacheEntry struct {
	sum     [32]byte // SHA-256 of the password
	thing   Thing
	expires time.Time
}

func newCredCache(ttl time.Duration, max int) *credCache {
	return &credCache{ttl: ttl, max: max, m: make(map[string]cacheEntry)}
}

func (c *credCache) get(username string, sum [32]byte, now time.Time) (Thing, bool) {
	if c.ttl <= 0 {
		return Thing{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[username]
	if !ok {
		return Thing{}, false
	}
	if !now.Before(e.expires) {
		delete(c.m, username)
		return Thing{}, false
	}
	if subtle.ConstantTimeCompare(e.sum[:], sum[:]) != 1 {
		return Thing{}, false
	}
	return e.thing, true
}

// currentEpoch is read before a verification consults the store; put refuses
// to cache the result if a purge happened in between, so a verification that
// raced with a reset or delete can never re-insert a revoked password.
func (c *credCache) currentEpoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

func (c *credCache) put(username string, sum [32]byte, t Thing, epoch uint64, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if _, ok := c.m[username]; !ok && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[username] = cacheEntry{sum: sum, thing: cloneThing(t), expires: now.Add(c.ttl)}
}

// evictLocked frees room: it scans a bounded number of entries, dropping the
// expired ones, and drops arbitrary ones if none had expired.
func (c *credCache) evictLocked(now time.Time) {
	const scan = 64
	n, freed := 0, 0
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
			freed++
		}
		if n++; n >= scan {
			break
		}
	}
	if freed > 0 {
		return
	}
	for k := range c.m {
		delete(c.m, k)
		if freed++; freed >= scan/8 {
			break
		}
	}
}

func (c *credCache) purge(username string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.m, username)
}

func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

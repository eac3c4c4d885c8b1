package oauth

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// KeyedLimiter is a token bucket per key (an IP address, a client id): Burst tokens, one more every
// Every.
type KeyedLimiter struct {
	Every time.Duration
	Burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxBuckets bounds memory under a flood of distinct keys.
const maxBuckets = 10000

func (l *KeyedLimiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		return b
	}
	if l.buckets == nil {
		l.buckets = map[string]*rate.Limiter{}
	}
	if len(l.buckets) >= maxBuckets {
		// Full buckets hold no information; drop them, and everything if that is not enough.
		for k, b := range l.buckets {
			if b.Tokens() >= float64(l.Burst) {
				delete(l.buckets, k)
			}
		}
		if len(l.buckets) >= maxBuckets {
			l.buckets = map[string]*rate.Limiter{}
		}
	}
	b := rate.NewLimiter(rate.Every(l.Every), l.Burst)
	l.buckets[key] = b
	return b
}

// Allow takes a token for key. When none is left it returns false and how long until there is one.
func (l *KeyedLimiter) Allow(key string) (bool, time.Duration) {
	b := l.bucket(key)
	if b.Allow() {
		return true, 0
	}
	return false, l.wait(b)
}

// Exhausted reports, without taking a token, whether key has none left and how long until it has.
func (l *KeyedLimiter) Exhausted(key string) (bool, time.Duration) {
	b := l.bucket(key)
	if b.Tokens() >= 1 {
		return false, 0
	}
	return true, l.wait(b)
}

func (l *KeyedLimiter) wait(b *rate.Limiter) time.Duration {
	d := time.Duration((1 - b.Tokens()) * float64(l.Every))
	return max(d.Round(time.Second), time.Second)
}

// ClientIP is the address a request came from. Behind a proxy in the cluster (the connection comes
// from a private or loopback address), it is the last X-Forwarded-For entry, the one that proxy
// appended; a client connecting directly cannot choose its address that way.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer := net.ParseIP(host)
	if peer == nil || !(peer.IsPrivate() || peer.IsLoopback()) {
		return host
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return host
	}
	entries := strings.Split(xff[len(xff)-1], ",")
	if ip := net.ParseIP(strings.TrimSpace(entries[len(entries)-1])); ip != nil {
		return ip.String()
	}
	return host
}

package flows

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

// Fetching of the JWK Sets private_key_jwt clients publish at a jwks_uri.
const (
	// jwksFetchTimeout bounds one fetch, connection and body included.
	jwksFetchTimeout = 5 * time.Second
	// maxJWKSBytes bounds a fetched JWK Set.
	maxJWKSBytes = 256 << 10
	// jwksCacheTTL is how long a fetched set is used before it is fetched
	// again.
	jwksCacheTTL = 5 * time.Minute
	// jwksRefetchInterval is the least time between two fetches for one
	// client, whatever triggers them (expiry, an unknown kid, a failure):
	// an unknown kid in a forged assertion cannot make the server hammer
	// the client's endpoint.
	jwksRefetchInterval = 10 * time.Second
	// jwksMaxStale is how long a set whose refresh keeps failing is still
	// used; after that the client cannot authenticate until a fetch works.
	jwksMaxStale = time.Hour
	// maxCachedRemoteSets bounds the clients whose fetched sets are kept.
	maxCachedRemoteSets = 4096
)

// remoteKeySets fetches and caches the JWK Sets of clients that register
// a jwks_uri.
type remoteKeySets struct {
	client *http.Client
	now    func() time.Time
	log    *zap.Logger

	mu   sync.Mutex
	sets map[string]*remoteKeySet // by client_id
}

// remoteKeySet is one client's fetched set. Its mutex is held during a
// fetch, so concurrent requests of that client wait for one fetch rather
// than each starting their own.
type remoteKeySet struct {
	uri string

	mu        sync.Mutex
	set       *jose.JSONWebKeySet
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last attempt
	err       error     // why the last attempt failed
}

func newRemoteKeySets(now func() time.Time, log *zap.Logger) *remoteKeySets {
	return &remoteKeySets{
		client: &http.Client{
			Timeout: jwksFetchTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("more than 3 redirects")
				}
				return ValidateJWKSURI(req.URL.String())
			},
		},
		now:  now,
		log:  log,
		sets: map[string]*remoteKeySet{},
	}
}

// entry returns the cache entry of client id for uri, replacing the entry
// when the client's jwks_uri changed.
func (c *remoteKeySets) entry(id, uri string) *remoteKeySet {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.sets[id]
	if e == nil || e.uri != uri {
		if len(c.sets) >= maxCachedRemoteSets {
			clear(c.sets)
		}
		e = &remoteKeySet{uri: uri}
		c.sets[id] = e
	}
	return e
}

// get returns the client's key set, fetching it when there is none yet,
// when it is older than jwksCacheTTL, or when refresh is set (an unknown
// kid) — each at most once per jwksRefetchInterval. fresh reports whether
// this call fetched the set.
func (c *remoteKeySets) get(ctx context.Context, id, uri string, refresh bool) (set *jose.JSONWebKeySet, fresh bool, err error) {
	e := c.entry(id, uri)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	due := e.set == nil || refresh || now.Sub(e.fetchedAt) >= jwksCacheTTL
	if due && (e.triedAt.IsZero() || now.Sub(e.triedAt) >= jwksRefetchInterval) {
		e.triedAt = now
		s, err := c.fetch(ctx, uri)
		if err == nil {
			e.set, e.fetchedAt, e.err, fresh = s, now, nil, true
		} else {
			e.err = err
			c.log.Warn("fetching a client's jwks_uri failed", zap.String("client_id", id), zap.String("jwks_uri", uri), zap.Error(err))
		}
	}
	if e.set == nil || now.Sub(e.fetchedAt) >= jwksCacheTTL+jwksMaxStale {
		if e.err == nil {
			e.err = errors.New("not fetched yet")
		}
		return nil, false, e.err
	}
	return e.set, fresh, nil
}

// fetch GETs and parses a JWK Set. It outlives the request that caused it
// (other requests wait on its result) but not jwksFetchTimeout.
func (c *remoteKeySets) fetch(ctx context.Context, uri string) (*jose.JSONWebKeySet, error) {
	if err := ValidateJWKSURI(uri); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered %d, want 200", uri, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", uri, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("the JWK Set at %s is larger than %d bytes", uri, maxJWKSBytes)
	}
	return ParseClientJWKS(body)
}

package proxy

import (
	"net/http"
	"slices"
	"strings"
)

// headerSet names the headers the gateway and the guard remove from what a
// client sent before a request goes upstream (identity headers, tokens),
// under every spelling an upstream may read as the same: any case, and _
// for - (CGI and FastCGI upstreams — php_fastcgi, WSGI, Rack — see
// X_Forwarded_User and X-Forwarded-User as the same HTTP_X_FORWARDED_USER).
type headerSet []string

// newHeaderSet returns the set of names.
func newHeaderSet(names ...string) headerSet {
	s := make(headerSet, 0, len(names))
	for _, n := range names {
		s = append(s, headerIdentity(n))
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// has reports whether name, as sent, is in the set. It compares in place:
// canonicalising every header of every request would allocate.
func (s headerSet) has(name string) bool {
	for _, c := range s {
		if len(c) == len(name) && sameHeaderName(c, name) {
			return true
		}
	}
	return false
}

// removeFrom deletes every header of h that is in the set.
func (s headerSet) removeFrom(h http.Header) {
	for name := range h {
		if s.has(name) {
			delete(h, name)
		}
	}
}

// headerIdentity is the name under which an upstream may read a header.
func headerIdentity(name string) string {
	return http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
}

// sameHeaderName compares a headerIdentity name with one as sent.
func sameHeaderName(canonical, name string) bool {
	lower := func(c byte) byte {
		if 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	for i := 0; i < len(name); i++ {
		a, b := canonical[i], name[i]
		if b == '_' {
			b = '-'
		}
		if a != b && lower(a) != lower(b) {
			return false
		}
	}
	return true
}

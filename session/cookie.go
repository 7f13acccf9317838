package session

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxChunk is the largest value put in one cookie: browsers keep at least
// 4096 bytes per cookie including its name and attributes.
const MaxChunk = 3800

// maxChunks bounds how many chunks are read back, so a hostile request
// cannot make the server assemble an unbounded value.
const maxChunks = 10

// CookieOptions are the attributes of the cookies a Store writes.
type CookieOptions struct {
	// Name is the base cookie name. With Secure set it gets the __Host-
	// prefix, which browsers only accept on Secure, Path=/ cookies without a
	// Domain: no subdomain or plain-HTTP page can plant or overwrite it.
	Name string
	// Secure marks cookies Secure. Turn it off only for plain-HTTP
	// development on localhost.
	Secure bool
	// SameSite defaults to Lax.
	SameSite http.SameSite
	// MaxAge is the cookie lifetime; zero makes a browser-session cookie.
	MaxAge time.Duration
}

// CookieName returns the name actually used, with the __Host- prefix when
// Secure.
func (o CookieOptions) CookieName() string {
	if o.Secure {
		return "__Host-" + o.Name
	}
	return o.Name
}

func (o CookieOptions) cookie(name, value string) *http.Cookie {
	ss := o.SameSite
	if ss == 0 {
		ss = http.SameSiteLaxMode
	}
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: o.Secure, SameSite: ss}
	if o.MaxAge > 0 {
		c.MaxAge = int(o.MaxAge / time.Second)
		c.Expires = time.Now().Add(o.MaxAge)
	}
	return c
}

// WriteChunked sets value in as many cookies as it needs (name, name_1,
// name_2, …) and expires chunks a previous, longer value left behind.
func WriteChunked(w http.ResponseWriter, r *http.Request, o CookieOptions, value string) error {
	base := o.CookieName()
	n := (len(value) + MaxChunk - 1) / MaxChunk
	if n > maxChunks {
		return fmt.Errorf("session: value of %d bytes needs more than %d cookies; use server-side sessions", len(value), maxChunks)
	}
	for i := 0; i < n; i++ {
		end := min((i+1)*MaxChunk, len(value))
		http.SetCookie(w, o.cookie(chunkName(base, i), value[i*MaxChunk:end]))
	}
	for i := max(n, 1); i < maxChunks; i++ {
		if _, err := r.Cookie(chunkName(base, i)); err == nil {
			expire(w, o, chunkName(base, i))
		}
	}
	return nil
}

// ReadChunked reassembles a value written by WriteChunked. It returns
// http.ErrNoCookie when the first chunk is missing.
func ReadChunked(r *http.Request, o CookieOptions) (string, error) {
	base := o.CookieName()
	first, err := r.Cookie(base)
	if err != nil {
		return "", err
	}
	if len(first.Value) < MaxChunk {
		return first.Value, nil
	}
	var b strings.Builder
	b.WriteString(first.Value)
	for i := 1; i < maxChunks; i++ {
		c, err := r.Cookie(chunkName(base, i))
		if err != nil {
			break
		}
		b.WriteString(c.Value)
		if len(c.Value) < MaxChunk {
			break
		}
	}
	return b.String(), nil
}

// Clear expires the cookie and every chunk of it the request carries.
func Clear(w http.ResponseWriter, r *http.Request, o CookieOptions) {
	base := o.CookieName()
	for i := 0; i < maxChunks; i++ {
		if _, err := r.Cookie(chunkName(base, i)); err == nil || i == 0 {
			expire(w, o, chunkName(base, i))
		}
	}
}

// IsChunkOf reports whether cookieName is the cookie o writes or one of its
// chunks, so a gateway can strip them from upstream requests.
func IsChunkOf(o CookieOptions, cookieName string) bool {
	base := o.CookieName()
	if cookieName == base {
		return true
	}
	rest, ok := strings.CutPrefix(cookieName, base+"_")
	if !ok {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

func expire(w http.ResponseWriter, o CookieOptions, name string) {
	c := o.cookie(name, "")
	c.MaxAge = -1
	c.Expires = time.Unix(0, 0)
	http.SetCookie(w, c)
}

func chunkName(base string, i int) string {
	if i == 0 {
		return base
	}
	return base + "_" + strconv.Itoa(i)
}

package session

import (
	"fmt"
	"net/http"
	"net/textproto"
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
	v, ok := readChunks(r, o, false)
	if !ok {
		return "", http.ErrNoCookie
	}
	return v, nil
}

// readChunks reassembles a chunked value from the request's cookies, read
// with r.Cookie, or when raw with rawCookie (see readRawChunks).
func readChunks(r *http.Request, o CookieOptions, raw bool) (string, bool) {
	lines := r.Header["Cookie"]
	cookie := func(name string) (string, bool) {
		if raw {
			return rawCookie(lines, name)
		}
		c, err := r.Cookie(name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	base := o.CookieName()
	first, ok := cookie(base)
	if !ok {
		return "", false
	}
	if len(first) < MaxChunk {
		return first, true
	}
	// Collect the chunks first so that the value is built in one
	// allocation: it is read on every request.
	var chunks [maxChunks]string
	chunks[0] = first
	n, size := 1, len(first)
	for ; n < maxChunks; n++ {
		c, ok := cookie(chunkName(base, n))
		if !ok {
			break
		}
		chunks[n] = c
		size += len(c)
		if len(c) < MaxChunk {
			n++
			break
		}
	}
	var b strings.Builder
	b.Grow(size)
	for _, c := range chunks[:n] {
		b.WriteString(c)
	}
	return b.String(), true
}

// maxRawCookies is net/http's default limit on the cookies of a request
// (GODEBUG httpcookiemaxnum): beyond it r.Cookie finds none.
const maxRawCookies = 3000

// readRawChunks is ReadChunked without its check of every byte of the
// values (kilobytes for a session): the first cookie of each name, split
// and trimmed as net/http does, quotes stripped, taken as it is. Where the
// first cookie of a name has a byte r.Cookie refuses, r.Cookie would skip
// it and ReadChunked give another value, so the result may only be trusted
// when it equals a value ReadChunked returned before: that one's bytes are
// all valid, and then so are these and ReadChunked would return the same.
func readRawChunks(r *http.Request, o CookieOptions) (string, bool) {
	lines := r.Header["Cookie"]
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if n > maxRawCookies {
		return "", false
	}
	return readChunks(r, o, true)
}

// rawCookie returns the value of the first cookie named name in the Cookie
// header lines, without checking its bytes.
func rawCookie(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for rest := textproto.TrimString(line); rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
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

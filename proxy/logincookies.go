package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/session"
)

// loginState is what one login in progress needs back at the callback.
type loginState struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v,omitempty"`
	ReturnTo string    `json:"r"`
	Created  time.Time `json:"c"`
}

// LoginCookies keep each login in progress in its own short-lived,
// encrypted cookie named after its state, so logins in parallel tabs all
// work, and bound how many pile up when logins are abandoned.
type LoginCookies struct {
	codec     *session.Codec
	base      session.CookieOptions
	crossSite bool
	max       int
	ttl       time.Duration
}

// loginTTL bounds how long a user may take at the provider.
const loginTTL = 15 * time.Minute

// maxPendingLogins bounds the login cookies a browser holds at once; the
// oldest is dropped first.
const maxPendingLogins = 5

// NewLoginCookies returns the login-state cookies for a gateway. crossSite
// is needed for response_mode=form_post: the provider's page POSTs to the
// callback from another site, and browsers only send SameSite=None; Secure
// cookies with such a request.
func NewLoginCookies(name string, secure, crossSite bool, secrets ...[]byte) (*LoginCookies, error) {
	codec, err := session.NewCodec("gateway login "+name, loginTTL, secrets...)
	if err != nil {
		return nil, err
	}
	opts := session.CookieOptions{Name: name, Secure: secure, MaxAge: loginTTL}
	if crossSite {
		// SameSite=None requires Secure. On http://localhost browsers treat
		// the origin as secure, so this works for local development too.
		opts.SameSite = http.SameSiteNoneMode
	}
	return &LoginCookies{codec: codec, base: opts, crossSite: crossSite, max: maxPendingLogins, ttl: loginTTL}, nil
}

func (lc *LoginCookies) cookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return lc.base.CookieName() + "_" + hex.EncodeToString(sum[:6])
}

func (lc *LoginCookies) owns(name string) bool {
	return strings.HasPrefix(name, lc.base.CookieName()+"_")
}

func (lc *LoginCookies) newCookie(name, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: lc.base.Secure, SameSite: http.SameSiteLaxMode, MaxAge: maxAge}
	if lc.crossSite {
		c.SameSite, c.Secure = http.SameSiteNoneMode, true
	}
	return c
}

// write stores st in its own cookie, dropping the oldest pending logins
// beyond the bound.
func (lc *LoginCookies) write(w http.ResponseWriter, r *http.Request, st *loginState) error {
	enc, err := lc.codec.Encode(lc.base.Name, st)
	if err != nil {
		return err
	}
	type pending struct {
		name    string
		created time.Time
	}
	var existing []pending
	for _, c := range r.Cookies() {
		if !lc.owns(c.Name) {
			continue
		}
		var old loginState
		if err := lc.codec.Decode(lc.base.Name, c.Value, &old); err != nil {
			existing = append(existing, pending{c.Name, time.Time{}}) // junk goes first
			continue
		}
		existing = append(existing, pending{c.Name, old.Created})
	}
	sort.Slice(existing, func(i, j int) bool { return existing[i].created.Before(existing[j].created) })
	for i := 0; i < len(existing)-(lc.max-1); i++ {
		http.SetCookie(w, lc.newCookie(existing[i].name, "", -1))
	}
	http.SetCookie(w, lc.newCookie(lc.cookieName(st.State), enc, int(lc.ttl/time.Second)))
	return nil
}

var errNoLogin = errors.New("no login in progress for this state")

// take returns the login started with state and expires its cookie: a
// callback is accepted once.
func (lc *LoginCookies) take(w http.ResponseWriter, r *http.Request, state string) (*loginState, error) {
	name := lc.cookieName(state)
	c, err := r.Cookie(name)
	if err != nil {
		return nil, errNoLogin
	}
	http.SetCookie(w, lc.newCookie(name, "", -1))
	var st loginState
	if err := lc.codec.Decode(lc.base.Name, c.Value, &st); err != nil {
		return nil, errors.Join(errNoLogin, err)
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		return nil, errNoLogin
	}
	return &st, nil
}

package flows

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// Pushed Authorization Requests (RFC 9126): a client POSTs the parameters
// of its authorization request to the server, authenticated, and sends the
// browser to /authorize with only client_id and the request_uri it got
// back. The parameters never travel through the browser, so they cannot be
// read or changed there, and a confidential client's request is known to
// come from it.

// requestURIPrefix starts every request_uri the server hands out (RFC 9126
// §2.2: "urn:ietf:params:oauth:request_uri:" followed by a reference).
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// parTTL is how long a pushed request can be used. RFC 9126 §2.2: "a
// value of 5 to 600 seconds is RECOMMENDED"; a minute covers a redirect.
const parTTL = 90 * time.Second

// clientAuthParams are the parameters of client authentication, which are
// not part of the authorization request a client pushes.
var clientAuthParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

func (s *Server) servePAR(w http.ResponseWriter, r *http.Request) {
	resp, err := s.pushAuthorizationRequest(w, r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) pushAuthorizationRequest(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	if err := parsePostForm(w, r); err != nil {
		return nil, err
	}
	ctx := r.Context()
	client, err := s.authenticateClient(r)
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	for k, v := range r.PostForm {
		params[k] = v
	}
	for _, k := range clientAuthParams {
		params.Del(k)
	}
	// RFC 9126 §2.1: "The request_uri authorization request parameter is
	// one exception, and it MUST NOT be provided."
	if params.Has("request_uri") {
		return nil, errInvalidRequest("request_uri must not be pushed")
	}
	params.Set("client_id", client.ID)
	// "the authorization server MUST ... validate the pushed request as it
	// would an authorization request sent to the authorization endpoint",
	// errors answered here rather than at a redirect URI.
	_, redirectURI, err := s.checkClientAndRedirect(ctx, params)
	if err != nil {
		return nil, err
	}
	if _, err := s.parseAuthRequest(ctx, client, redirectURI, params); err != nil {
		return nil, err
	}
	ref := randomToken()
	now := s.now()
	rec := &store.PushedRequest{Digest: digest(ref), ClientID: client.ID, Params: params.Encode(), CreatedAt: now, ExpiresAt: now.Add(parTTL)}
	if err := s.store.PutPushedRequest(ctx, rec); err != nil {
		return nil, errServer(err)
	}
	return map[string]any{"request_uri": requestURIPrefix + ref, "expires_in": int64(parTTL / time.Second)}, nil
}

// pushedParams returns the pushed parameters of an authorization request
// that names a request_uri (RFC 9126 §4), using the pushed request up. The
// front-channel parameters other than client_id are ignored.
func (s *Server) pushedParams(ctx context.Context, params url.Values) (url.Values, error) {
	ref, ok := strings.CutPrefix(params.Get("request_uri"), requestURIPrefix)
	if !ok || ref == "" {
		return nil, oauthErr("invalid_request_uri", http.StatusBadRequest, "request_uri is not one this server issued; push the request to the pushed_authorization_request_endpoint first")
	}
	rec, err := s.store.TakePushedRequest(ctx, digest(ref))
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauthErr("invalid_request_uri", http.StatusBadRequest, "request_uri is unknown, expired or already used; push the request again")
	}
	if err != nil {
		return nil, errServer(err)
	}
	// RFC 9126 §4: "The authorization server MUST validate authorization
	// requests arising from a pushed request as it would any other
	// authorization request" and check the client_id matches.
	if params.Get("client_id") != rec.ClientID {
		return nil, errInvalidRequest("client_id does not match the client that pushed the request")
	}
	pushed, err := url.ParseQuery(rec.Params)
	if err != nil {
		return nil, errServer(err)
	}
	return pushed, nil
}

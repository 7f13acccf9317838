package flows

import (
	"mime"
	"net/http"
	"net/url"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/store"
)

// Grant types handled by the built-in grant handlers.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	// GrantDeviceCode is the Device Authorization Grant (RFC 8628 §3.4).
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantPassword is the Resource Owner Password Credentials grant
	// (RFC 6749 §4.3), for trusted legacy clients only.
	GrantPassword = "password"
	// GrantCIBA is the CIBA grant (OpenID CIBA Core 1.0 §10.1).
	GrantCIBA = "urn:openid:params:grant-type:ciba"
)

// maxFormBytes bounds every form body the server parses.
const maxFormBytes = 64 << 10

// TokenRequest is an authenticated request to the token endpoint.
type TokenRequest struct {
	// Client is the authenticated client.
	Client *store.Client
	// Form holds the request parameters.
	Form url.Values
	// HTTP is the underlying request (for its context and headers).
	HTTP *http.Request
	// DPoP is the request's verified DPoP proof (RFC 9449 §5), nil when it
	// had none. A grant binds the tokens it issues to DPoP.JKT.
	DPoP *dpop.Proof
}

// dpopJKT is the thumbprint of the request's DPoP key, "" without a proof.
func (r *TokenRequest) dpopJKT() string {
	if r.DPoP == nil {
		return ""
	}
	return r.DPoP.JKT
}

// GrantHandler fulfils one grant type at the token endpoint.
type GrantHandler interface {
	// Grant validates req and issues tokens, or returns an *Error.
	Grant(req *TokenRequest) (*TokenResponse, error)
}

// RegisterGrant makes the token endpoint hand grant_type requests to h.
// Later grants (device code, CIBA, password, token exchange) plug in here
// without touching the others.
func (s *Server) RegisterGrant(grantType string, h GrantHandler) {
	s.grants[grantType] = h
	if s.mux != nil {
		s.refreshMetadata()
	}
}

// parsePostForm parses an application/x-www-form-urlencoded body, bounded
// in size, and refuses repeated parameters (RFC 6749 §3.1, §3.2).
func parsePostForm(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed, Description: "use POST"}
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	_, err := readForm(w, r)
	return err
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	resp, err := s.token(w, r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) (*TokenResponse, error) {
	if err := parsePostForm(w, r); err != nil {
		return nil, err
	}
	client, err := s.authenticateClient(r)
	if err != nil {
		return nil, err
	}
	gt := r.PostForm.Get("grant_type")
	if gt == "" {
		return nil, errInvalidRequest("grant_type is required")
	}
	h, ok := s.grants[gt]
	if !ok {
		return nil, errUnsupportedGrantType("grant_type %q is not supported", gt)
	}
	if !client.HasGrantType(gt) {
		return nil, errUnauthorizedClient("client %s is not allowed the %s grant", client.ID, gt)
	}
	proof, err := s.tokenRequestProof(r)
	if err != nil {
		return nil, err
	}
	return h.Grant(&TokenRequest{Client: client, Form: r.PostForm, HTTP: r, DPoP: proof})
}

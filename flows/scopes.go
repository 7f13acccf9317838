package flows

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/store"
)

// standardScopes are the scopes the server itself defines, with the words
// shown on the consent page.
var standardScopes = []struct{ Name, Description string }{
	{"openid", "Sign you in"},
	{"profile", "See your name and username"},
	{"email", "See your email address"},
	{"groups", "See which groups you belong to"},
	{"offline_access", "Stay connected when you are not using it"},
}

func standardScopeNames() []string {
	out := make([]string, len(standardScopes))
	for i, sc := range standardScopes {
		out[i] = sc.Name
	}
	return out
}

func isStandardScope(name string) bool {
	for _, sc := range standardScopes {
		if sc.Name == name {
			return true
		}
	}
	return false
}

func scopeDescription(name string) string {
	for _, sc := range standardScopes {
		if sc.Name == name {
			return sc.Description
		}
	}
	return "Use " + name
}

// maxScopeLen bounds the scope parameter: it is parsed before the client
// authenticates, so it must stay cheap.
const maxScopeLen = 4096

// parseScope splits a scope parameter (RFC 6749 §3.3: space-delimited,
// order irrelevant) into distinct scope tokens.
func parseScope(param string) ([]string, error) {
	if len(param) > maxScopeLen {
		return nil, errInvalidScope("the scope parameter is longer than %d characters", maxScopeLen)
	}
	var out []string
	seen := map[string]bool{}
	for _, sc := range strings.Split(param, " ") {
		if sc == "" {
			continue
		}
		// scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
		for _, c := range []byte(sc) {
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, errInvalidScope("scope %q contains a character RFC 6749 §3.3 does not allow", sc)
			}
		}
		if !seen[sc] {
			seen[sc] = true
			out = append(out, sc)
		}
	}
	return out, nil
}

func hasScope(scopes []string, s string) bool { return slices.Contains(scopes, s) }

// resolveAudience picks the API a user-facing request is for: the
// audience or resource parameter when given, otherwise the one API that
// defines every non-standard scope requested. It returns nil when only
// standard scopes are asked for.
func (s *Server) resolveAudience(ctx context.Context, audience string, scopes []string) (*store.API, error) {
	if audience != "" {
		api, err := s.store.GetAPI(ctx, audience)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errInvalidRequest("audience %q is not a known API", audience)
		}
		if err != nil {
			return nil, errServer(err)
		}
		return api, nil
	}
	var custom []string
	for _, sc := range scopes {
		if !isStandardScope(sc) {
			custom = append(custom, sc)
		}
	}
	if len(custom) == 0 {
		return nil, nil
	}
	apis, err := s.store.ListAPIs(ctx)
	if err != nil {
		return nil, errServer(err)
	}
	var match *store.API
	for _, api := range apis {
		if containsAll(api.Scopes, custom) {
			if match != nil {
				return nil, errInvalidRequest("scopes %s are defined by more than one API: name one with the audience parameter", strings.Join(custom, " "))
			}
			match = api
		}
	}
	if match == nil {
		return nil, errInvalidScope("no API defines the scopes %s", strings.Join(custom, " "))
	}
	return match, nil
}

// checkUserScopes refuses scopes that are neither standard nor defined by
// the API, or that the client may not request.
func checkUserScopes(client *store.Client, api *store.API, scopes []string) error {
	for _, sc := range scopes {
		known := isStandardScope(sc) || (api != nil && slices.Contains(api.Scopes, sc))
		if !known {
			return errInvalidScope("scope %q is not defined by this server or the requested API", sc)
		}
		if len(client.Scopes) > 0 && !slices.Contains(client.Scopes, sc) {
			return errInvalidScope("client %s may not request scope %q", client.ID, sc)
		}
	}
	return nil
}

// allowedUserScopes keeps the scopes that checkUserScopes would accept
// today, in their order.
func allowedUserScopes(client *store.Client, api *store.API, scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if checkUserScopes(client, api, []string{sc}) == nil {
			out = append(out, sc)
		}
	}
	return out
}

// consentScopes names what a user consents to: standard scopes as they
// are, an API's scopes qualified by the API (scope tokens cannot contain a
// space), so consent for one API never covers another API's same-named
// scope.
func consentScopes(audience string, scopes []string) []string {
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		if isStandardScope(sc) || audience == "" {
			out[i] = sc
		} else {
			out[i] = audience + " " + sc
		}
	}
	return out
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

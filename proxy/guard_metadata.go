package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// wellKnownResource is the RFC 9728 §3 well-known path.
const wellKnownResource = "/.well-known/oauth-protected-resource"

// resourceMetadata is the OAuth 2.0 Protected Resource Metadata document
// (RFC 9728 §2).
type resourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	DPoPAlgs               []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundRequired      bool     `json:"dpop_bound_access_tokens_required,omitempty"`
}

// serveMetadata answers a request under the well-known path with the
// metadata of the resource it names, and reports whether it did. RFC 9728
// §3.1: the well-known path goes between the host and the path of the
// resource identifier, and §3.3: the document's resource MUST be the
// identifier the URL was made from. So a configured Resource is served at
// its own metadata URL only (others are 404); without one the resource is
// the request's origin plus whatever path follows the well-known one.
func (g *Guard) serveMetadata(w http.ResponseWriter, r *http.Request) bool {
	suffix := strings.TrimPrefix(r.URL.Path, wellKnownResource)
	if suffix != "" && !strings.HasPrefix(suffix, "/") {
		return false // /.well-known/oauth-protected-resourceX is not ours
	}
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return true
	}
	resource := g.origin(r) + suffix
	if g.cfg.Resource != "" {
		if r.URL.Path != g.metadataPath() {
			http.NotFound(w, r)
			return true
		}
		resource = g.cfg.Resource
	}
	doc := resourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{g.cfg.Issuer},
		ScopesSupported:        g.cfg.Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           g.cfg.ResourceName,
		DPoPAlgs:               strings.Fields(g.dpopAlgs),
		DPoPBoundRequired:      g.cfg.RequireDPoP,
	}
	if g.cfg.AllowQueryToken {
		doc.BearerMethodsSupported = append(doc.BearerMethodsSupported, "query")
	}
	b, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, "metadata", http.StatusInternalServerError)
		return true
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(b)
	return true
}

// metadataPath is the path of the configured Resource's metadata.
func (g *Guard) metadataPath() string {
	u, _ := url.Parse(g.cfg.Resource) // checked by NewGuard
	return wellKnownResource + strings.TrimSuffix(u.EscapedPath(), "/")
}

// metadataURL is the URL of the metadata of the resource r is for, as
// 401 answers name it (RFC 9728 §5.1).
func (g *Guard) metadataURL(r *http.Request) string {
	if g.cfg.Resource == "" {
		return g.origin(r) + wellKnownResource
	}
	u, _ := url.Parse(g.cfg.Resource)
	return u.Scheme + "://" + u.Host + g.metadataPath()
}

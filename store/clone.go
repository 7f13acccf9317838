package store

import "slices"

// Clone returns a deep copy of c: a backend that keeps decoded clients in
// memory hands each caller its own, which it may change freely.
func (c *Client) Clone() *Client {
	out := *c
	out.JWKS = slices.Clone(c.JWKS)
	out.RedirectURIs = slices.Clone(c.RedirectURIs)
	out.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	out.GrantTypes = slices.Clone(c.GrantTypes)
	out.ResponseTypes = slices.Clone(c.ResponseTypes)
	out.Scopes = slices.Clone(c.Scopes)
	if c.APIAccess != nil {
		out.APIAccess = make(map[string][]string, len(c.APIAccess))
		for k, v := range c.APIAccess {
			out.APIAccess[k] = slices.Clone(v)
		}
	}
	return &out
}

// Clone returns a deep copy of a.
func (a *API) Clone() *API {
	out := *a
	out.Scopes = slices.Clone(a.Scopes)
	return &out
}

package flows

import (
	"net/http"
	"net/url"
	"slices"
)

// Every endpoint and page of the server reads its parameters through the
// helpers of this file, so that one rule holds everywhere. RFC 6749 §3.1:
// "Request and response parameters MUST NOT be included more than once."
// A repeated parameter is ambiguous — max_age=99999&max_age=0 means
// different things to code that reads the first value and code that reads
// the last — so it is refused rather than guessed at.

// repeatedParam names a parameter given more than once, or "" when there
// is none. With several, the first in sort order, so the error is stable.
func repeatedParam(v url.Values) string {
	var repeated []string
	for k, vals := range v {
		if len(vals) > 1 {
			repeated = append(repeated, k)
		}
	}
	if len(repeated) == 0 {
		return ""
	}
	slices.Sort(repeated)
	return repeated[0]
}

// errRepeated is the invalid_request of a repeated parameter.
func errRepeated(name string) *Error {
	return errInvalidRequest("parameter %s is repeated (RFC 6749 section 3.1: parameters must not be included more than once)", name)
}

// queryParams reads a GET request's query string, refusing repeated
// parameters.
func queryParams(r *http.Request) (url.Values, error) {
	q := r.URL.Query()
	if k := repeatedParam(q); k != "" {
		return nil, errRepeated(k)
	}
	return q, nil
}

// readForm reads a POSTed form body, bounded in size, into r.PostForm and
// refuses repeated parameters. Parameters in the URL of a POST are not
// read.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errInvalidRequest("the form body could not be parsed or is larger than %d bytes", maxFormBytes)
	}
	if k := repeatedParam(r.PostForm); k != "" {
		return nil, errRepeated(k)
	}
	return r.PostForm, nil
}

// requestParams reads the parameters of an endpoint that takes GET and
// POST alike (authorization, end_session): the query string or the form.
// Other methods get 405.
func requestParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	switch r.Method {
	case http.MethodGet:
		return queryParams(r)
	case http.MethodPost:
		return readForm(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		return nil, &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed, Description: "use GET or POST"}
	}
}

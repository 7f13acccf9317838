package main

// The token_vs_node scenario: Portcullis' token endpoint against panva's
// node oidc-provider (tests/oidcprovider/server.mjs), both issuing ES256 JWT
// access tokens to the same client_credentials client for the same API.
//
// The measurement rules: each server is pinned to one core and the load
// generator to another (bench.sh does the pinning with taskset); both
// servers run throughout, but only one is loaded at a time, in rounds that
// alternate portcullis, node, portcullis, node…; the ratio is the median of
// the per-round ratios (each round's portcullis tokens/s over node's in the
// same round); each figure carries the CPU that every other process used
// meanwhile; a server's CPU per token is its utime+stime over the round
// divided by the tokens. Every response must be a 200 with a compact JWS
// access token, and after each round the last token of every worker is
// decoded and checked in full: an ES256 signature by a key of the server's
// JWKS, typ at+jwt, its issuer, the API as audience, the client, the scope,
// a unique jti. Neither side can serve a cached or unsigned token.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// cleanCores is how much of the servers' CPU other processes may use in a
// round before the summary names the round as disturbed.
const cleanCores = 0.05

// disturbance is the most other processes took of the server's or the
// load generator's CPU in a round, as cores.
func disturbance(r *result) float64 {
	d := r.cpu.pinnedOther
	if r.cpu.lgPinnedOK {
		d = max(d, r.cpu.lgPinnedOther)
	}
	return d
}

// tokenVsNodeTarget is the requirement: Portcullis issues at least 3× the
// tokens per second of node oidc-provider, measured the same way.
const tokenVsNodeTarget = 3.0

// vsOpts are the token_vs_node flags.
var vsOpts struct {
	nodeBase     string
	nodePID      int
	roundSeconds float64
}

// vsBody is the one token request both servers get: the API named as an
// RFC 8707 resource (oidc-provider's resource indicators; Portcullis takes
// resource as well as audience) and the one scope the client has for it.
var vsBody = url.Values{"grant_type": {"client_credentials"}, "resource": {apiAudience}, "scope": {"read:items"}}.Encode()

// tokenSide is one server under test, with its own keep-alive connections.
type tokenSide struct {
	name     string
	base     string
	pid      int
	issuer   string
	tokenURL string
	jwksURL  string
	keys     map[string]*ecdsa.PublicKey
	tr       *http.Transport
	client   *http.Client
	jtis     map[string]struct{} // every jti checked, over the whole run
	checked  int
	checkErr error // the first failed check of a sampled token
}

func newTokenSide(name, base string, pid, concurrency int) *tokenSide {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &tokenSide{
		name: name, base: strings.TrimSuffix(base, "/"), pid: pid, tr: tr,
		client: &http.Client{Transport: tr, CheckRedirect: noRedirects, Timeout: 30 * time.Second},
		jtis:   map[string]struct{}{},
	}
}

// discover reads the side's discovery document (issuer, token endpoint,
// JWKS) and its signing keys.
func (sd *tokenSide) discover(ctx context.Context) error {
	var doc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
		JWKSURI       string `json:"jwks_uri"`
	}
	if err := sd.getJSON(ctx, sd.base+"/.well-known/openid-configuration", &doc); err != nil {
		return err
	}
	if doc.Issuer == "" || doc.TokenEndpoint == "" || doc.JWKSURI == "" {
		return fmt.Errorf("%s: discovery lacks issuer, token_endpoint or jwks_uri", sd.name)
	}
	for _, u := range []string{doc.TokenEndpoint, doc.JWKSURI} {
		if err := checkLoopback(u); err != nil {
			return fmt.Errorf("%s: discovery: %w", sd.name, err)
		}
	}
	sd.issuer, sd.tokenURL, sd.jwksURL = doc.Issuer, doc.TokenEndpoint, doc.JWKSURI
	return sd.fetchKeys(ctx)
}

func (sd *tokenSide) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := sd.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: GET %s: %w", sd.name, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: GET %s: status %d", sd.name, u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s: GET %s: %w", sd.name, u, err)
	}
	return nil
}

// fetchKeys loads the P-256 keys of the side's JWKS by kid.
func (sd *tokenSide) fetchKeys(ctx context.Context) error {
	var set struct {
		Keys []struct {
			Kty, Crv, Kid, X, Y string
		} `json:"keys"`
	}
	if err := sd.getJSON(ctx, sd.jwksURL, &set); err != nil {
		return err
	}
	sd.keys = map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" {
			continue
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return fmt.Errorf("%s: JWKS key %q: bad x or y", sd.name, k.Kid)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return fmt.Errorf("%s: JWKS key %q: %w", sd.name, k.Kid, err)
		}
		sd.keys[k.Kid] = pub
	}
	if len(sd.keys) == 0 {
		return fmt.Errorf("%s: the JWKS has no P-256 key: the server cannot be signing ES256", sd.name)
	}
	return nil
}

// tokenWorker is one closed-loop worker's state: two response buffers, so
// that the last good response survives the next request.
type tokenWorker struct {
	sd        *tokenSide
	cur, last bytes.Buffer
	have      bool
}

func (w *tokenWorker) op(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.sd.tokenURL, strings.NewReader(vsBody))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", backendAuth)
	resp, err := w.sd.client.Do(req)
	if err != nil {
		return err
	}
	w.cur.Reset()
	_, err = w.cur.ReadFrom(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: status %d: %.200s", w.sd.tokenURL, resp.StatusCode, w.cur.Bytes())
	}
	// The cheap check of every response: a compact JWS access token.
	tok := accessTokenOf(w.cur.Bytes())
	if !bytes.HasPrefix(tok, []byte("eyJ")) || bytes.Count(tok, []byte(".")) != 2 {
		return fmt.Errorf("POST %s: no JWT access_token in %.200s", w.sd.tokenURL, w.cur.Bytes())
	}
	w.cur, w.last = w.last, w.cur
	w.have = true
	return nil
}

// accessTokenOf finds the access_token member of a JSON token response
// without decoding it all (nil when there is none).
func accessTokenOf(body []byte) []byte {
	_, rest, ok := bytes.Cut(body, []byte(`"access_token"`))
	if !ok {
		return nil
	}
	rest = bytes.TrimLeft(rest, " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return nil
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return nil
	}
	tok, _, ok := bytes.Cut(rest[1:], []byte(`"`))
	if !ok {
		return nil
	}
	return tok
}

// check decodes a token response in full and verifies its access token.
func (sd *tokenSide) check(ctx context.Context, body []byte) error {
	var resp struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("token response: %w", err)
	}
	if !strings.EqualFold(resp.TokenType, "Bearer") || resp.ExpiresIn <= 0 {
		return fmt.Errorf("token response: token_type %q, expires_in %d", resp.TokenType, resp.ExpiresIn)
	}
	parts := strings.Split(resp.AccessToken, ".")
	if len(parts) != 3 {
		return errors.New("access token: not a compact JWS")
	}
	var hdr struct {
		Alg, Typ, Kid string
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return fmt.Errorf("access token header: %w", err)
	}
	if hdr.Alg != "ES256" {
		return fmt.Errorf("access token header: alg %q, want ES256", hdr.Alg)
	}
	if t := strings.ToLower(hdr.Typ); t != "at+jwt" && t != "application/at+jwt" {
		return fmt.Errorf("access token header: typ %q, want at+jwt (RFC 9068)", hdr.Typ)
	}
	key := sd.keys[hdr.Kid]
	if key == nil {
		// Perhaps a rotation: reload the JWKS once.
		if err := sd.fetchKeys(ctx); err != nil {
			return err
		}
		if key = sd.keys[hdr.Kid]; key == nil {
			return fmt.Errorf("access token header: kid %q is not in the JWKS", hdr.Kid)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return errors.New("access token: the signature is not 64 bytes of base64url (ES256 r||s)")
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(key, sum[:], r, s) {
		return fmt.Errorf("access token: bad ES256 signature (kid %q)", hdr.Kid)
	}
	var claims struct {
		Iss      string          `json:"iss"`
		Aud      json.RawMessage `json:"aud"`
		ClientID string          `json:"client_id"`
		Scope    string          `json:"scope"`
		JTI      string          `json:"jti"`
		Exp      int64           `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("access token claims: %w", err)
	}
	var auds []string
	if err := json.Unmarshal(claims.Aud, &auds); err != nil {
		var one string
		if err := json.Unmarshal(claims.Aud, &one); err != nil {
			return fmt.Errorf("access token: aud %s", claims.Aud)
		}
		auds = []string{one}
	}
	switch {
	case claims.Iss != sd.issuer:
		return fmt.Errorf("access token: iss %q, want %q", claims.Iss, sd.issuer)
	case !slices.Contains(auds, apiAudience):
		return fmt.Errorf("access token: aud %s lacks %s", claims.Aud, apiAudience)
	case claims.ClientID != backendID:
		return fmt.Errorf("access token: client_id %q", claims.ClientID)
	case claims.Scope != "read:items":
		return fmt.Errorf("access token: scope %q, want read:items", claims.Scope)
	case claims.Exp <= time.Now().Unix():
		return fmt.Errorf("access token: expired (exp %d)", claims.Exp)
	case claims.JTI == "":
		return errors.New("access token: no jti")
	}
	if _, seen := sd.jtis[claims.JTI]; seen {
		return fmt.Errorf("access token: jti %q seen before: a replayed token", claims.JTI)
	}
	sd.jtis[claims.JTI] = struct{}{}
	sd.checked++
	return nil
}

func decodeSegment(seg string, out any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// vsRound is one side's figures in one round.
type vsRound struct {
	round   int
	side    *tokenSide
	r       *result
	checked int // tokens decoded and verified after the round
}

func (v *vsRound) micros() float64 {
	if !v.r.cpu.ok || !v.r.cpu.serverOK || v.r.ok == 0 {
		return 0
	}
	return 1e6 * v.r.cpu.server * v.r.elapsed.Seconds() / float64(v.r.ok)
}

// runTokenVsNode is the token_vs_node scenario.
func (lg *loadgen) runTokenVsNode(concurrency int, warmup, _ time.Duration, serverPID int) []*result {
	name := "token_vs_node"
	fail := func(err error) []*result {
		return []*result{{name: name, unit: "tokens", concurrency: concurrency, setupErr: err}}
	}
	if vsOpts.nodeBase == "" {
		return fail(errors.New("needs -node-base (the node oidc-provider's issuer URL)"))
	}
	sides := []*tokenSide{
		newTokenSide("portcullis", lg.base, serverPID, concurrency),
		newTokenSide("node", vsOpts.nodeBase, vsOpts.nodePID, concurrency),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Preflight: discovery, keys, and one token of each side checked in
	// full.
	for _, sd := range sides {
		if err := sd.discover(ctx); err != nil {
			return fail(err)
		}
		w := &tokenWorker{sd: sd}
		if err := w.op(ctx); err != nil {
			return fail(fmt.Errorf("%s preflight: %w", sd.name, err))
		}
		if err := sd.check(ctx, w.last.Bytes()); err != nil {
			return fail(fmt.Errorf("%s preflight: %w", sd.name, err))
		}
		sd.tr.CloseIdleConnections()
		fmt.Printf("  %-20s %-10s issuer %s, token endpoint %s, pid %d\n", name, sd.name, sd.issuer, sd.tokenURL, sd.pid)
	}
	rounds := max(gwOpts.rounds, 1)
	per := time.Duration(vsOpts.roundSeconds * float64(time.Second))
	fmt.Printf("  %-20s %d rounds × (%s warm-up + %s measured) per side, %d workers, %d CPUs, load generator GOMAXPROCS %d\n",
		name, rounds, warmup, per, concurrency, machineCPUs(), runtime.GOMAXPROCS(0))

	var all []*vsRound
	for round := 1; round <= rounds; round++ {
		for _, sd := range sides {
			workers := make([]*tokenWorker, concurrency)
			ops := make([]func(context.Context) error, concurrency)
			for i := range workers {
				workers[i] = &tokenWorker{sd: sd}
				ops[i] = workers[i].op
			}
			// Fresh connections each round, on both sides alike (node
			// closes idle ones after 5 s anyway).
			r := measureWorkers(ops, warmup, per, sd.pid)
			sd.tr.CloseIdleConnections()
			r.name, r.unit = sd.name, "tokens"
			v := &vsRound{round: round, side: sd, r: r}
			for _, w := range workers {
				if !w.have {
					continue
				}
				if err := sd.check(ctx, w.last.Bytes()); err != nil {
					if sd.checkErr == nil {
						sd.checkErr = fmt.Errorf("round %d: %w", round, err)
					}
					continue
				}
				v.checked++
			}
			all = append(all, v)
			printVsRound(v)
		}
	}
	return summarizeTokenVsNode(sides, all, concurrency)
}

func pinnedOther(r *result) string {
	if !r.cpu.pinnedOK {
		return "?"
	}
	return fmt.Sprintf("%.2f", r.cpu.pinnedOther)
}

func lgPinnedOther(r *result) string {
	if !r.cpu.lgPinnedOK {
		return "?"
	}
	return fmt.Sprintf("%.2f", r.cpu.lgPinnedOther)
}

func printVsRound(v *vsRound) {
	r := v.r
	fmt.Printf("  round %2d %-10s %6.0f tokens/s (%d errors) p50 %s p99 %s  server %4.0f µs/token, %.2f cores  load generator %.2f  other processes %.2f (%s on the server's CPU, %s on the load generator's)  interrupts %.2f  %d tokens verified\n",
		v.round, v.side.name, r.rate(), r.errs, ms(r.pct(.50)), ms(r.pct(.99)), v.micros(), r.cpu.server, r.cpu.loadgen, r.cpu.other, pinnedOther(r), lgPinnedOther(r), r.cpu.irq, v.checked)
	if r.firstErr != "" {
		fmt.Printf("  %-20s first error: %s\n", "", r.firstErr)
	}
}

// summarizeTokenVsNode prints the per-round table and the medians, and
// returns a row per side for the overall table.
func summarizeTokenVsNode(sides []*tokenSide, all []*vsRound, concurrency int) []*result {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "round\tserver\ttokens/s\terrors\tp50\tp99\tsrv µs/token\tsrv cores\tlg cores\tother cores\ton srv CPU\ton lg CPU\tirq\tverified\t")
	for _, v := range all {
		r := v.r
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%d\t%s\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.2f\t%d\t\n", v.round, v.side.name, r.rate(), r.errs,
			ms(r.pct(.50)), ms(r.pct(.99)), v.micros(), r.cpu.server, r.cpu.loadgen, r.cpu.other, pinnedOther(r), lgPinnedOther(r), r.cpu.irq, v.checked)
	}
	tw.Flush()
	fmt.Printf("srv cores: the server's utime+stime over the round, as cores; other cores: every process but the server under test and\n"+
		"the load generator (the idle server included), /proc/stat's busy time less theirs; on srv CPU, on lg CPU: the part of it\n"+
		"on the servers' CPU, taken from the server under test, and on the load generator's, taken from it; irq: interrupts and\n"+
		"softirqs (mostly the benchmark's own loopback packets), apart; %d CPUs.\n", machineCPUs())

	by := map[*tokenSide][]*vsRound{}
	for _, v := range all {
		by[v.side] = append(by[v.side], v)
	}
	pc, nd := by[sides[0]], by[sides[1]]
	var ratios, cpuRatios, others, pinned, lgPinned, cleanRatios []float64
	var dirty []int
	var loadgenBusy, serverIdle []string
	for k := range min(len(pc), len(nd)) {
		if b := nd[k].r.rate(); b > 0 {
			ratios = append(ratios, pc[k].r.rate()/b)
			// A clean pair: on neither side did other processes take
			// more than cleanCores of the servers' CPU.
			if pc[k].r.cpu.pinnedOK && nd[k].r.cpu.pinnedOK {
				if disturbance(pc[k].r) <= cleanCores && disturbance(nd[k].r) <= cleanCores {
					cleanRatios = append(cleanRatios, pc[k].r.rate()/b)
				} else {
					dirty = append(dirty, pc[k].round)
				}
			}
		}
		if a := pc[k].micros(); a > 0 {
			cpuRatios = append(cpuRatios, nd[k].micros()/a)
		}
	}
	for _, v := range all {
		others = append(others, v.r.cpu.other)
		if v.r.cpu.pinnedOK {
			pinned = append(pinned, v.r.cpu.pinnedOther)
		}
		if v.r.cpu.lgPinnedOK {
			lgPinned = append(lgPinned, v.r.cpu.lgPinnedOther)
		}
		if v.r.cpu.loadgen > 0.9 {
			loadgenBusy = append(loadgenBusy, fmt.Sprintf("%d %s", v.round, v.side.name))
		}
		if v.r.cpu.serverOK && v.r.cpu.server < 0.9 {
			serverIdle = append(serverIdle, fmt.Sprintf("%d %s", v.round, v.side.name))
		}
	}
	med := func(vs []*vsRound, f func(*vsRound) float64) float64 {
		x := make([]float64, len(vs))
		for i, v := range vs {
			x[i] = f(v)
		}
		if len(x) == 0 {
			return 0
		}
		return median(x)
	}
	rate := func(v *vsRound) float64 { return v.r.rate() }
	micros := func(v *vsRound) float64 { return v.micros() }
	medRatio := 0.0
	if len(ratios) > 0 {
		var b strings.Builder
		for _, x := range ratios {
			fmt.Fprintf(&b, " %.2f", x)
		}
		medRatio = median(slices.Clone(ratios))
		fmt.Printf("\ntoken_vs_node: portcullis/node tokens/s per round:%s\n", b.String())
	}
	verdict := "BELOW"
	if medRatio >= tokenVsNodeTarget {
		verdict = "PASS"
	}
	fmt.Printf("  median ratio %.2f× (target ≥ %.0f×: %s)\n", medRatio, tokenVsNodeTarget, verdict)
	if len(dirty) > 0 {
		clean := "none left"
		if len(cleanRatios) > 0 {
			clean = fmt.Sprintf("%.2f× over the %d others", median(cleanRatios), len(cleanRatios))
		}
		fmt.Printf("  rounds where other processes took more than %.2f core of the servers' or the load generator's CPU on either side: %v;\n  median ratio %s (for information: the figure is the median over all rounds)\n",
			cleanCores, dirty, clean)
	}
	fmt.Printf("  median tokens/s: portcullis %.0f, node %.0f\n", med(pc, rate), med(nd, rate))
	medCPU := 0.0
	if len(cpuRatios) > 0 {
		medCPU = median(slices.Clone(cpuRatios))
	}
	fmt.Printf("  median server CPU per token: portcullis %.0f µs, node %.0f µs (node/portcullis per round, median %.2f×)\n",
		med(pc, micros), med(nd, micros), medCPU)
	if len(others) > 0 {
		fmt.Printf("  other processes' CPU during the rounds: median %.2f, max %.2f cores (of %d)\n",
			median(slices.Clone(others)), slices.Max(others), machineCPUs())
	}
	if len(pinned) > 0 {
		fmt.Printf("  of it on the servers' CPU: median %.2f, max %.2f cores\n", median(slices.Clone(pinned)), slices.Max(pinned))
	}
	if len(lgPinned) > 0 {
		fmt.Printf("  of it on the load generator's CPU: median %.2f, max %.2f cores (the load generator must send ~3× more requests\n"+
			"  to Portcullis than to node: CPU taken from it caps Portcullis' figure first)\n", median(slices.Clone(lgPinned)), slices.Max(lgPinned))
	}
	for _, sd := range sides {
		fmt.Printf("  %s: %d tokens decoded and verified (ES256 signature by a JWKS key, typ at+jwt, iss, aud, client_id, scope, exp, unique jti)\n", sd.name, sd.checked)
	}
	if len(loadgenBusy) > 0 {
		fmt.Printf("WARNING: the load generator used more than 0.9 core in rounds %s: it may have set the pace, not the server.\n", strings.Join(loadgenBusy, ", "))
	}
	if len(serverIdle) > 0 {
		fmt.Printf("WARNING: the server under test used less than 0.9 core in rounds %s: other processes took its core, or the load generator could not keep it busy.\n", strings.Join(serverIdle, ", "))
	}
	if len(others) > 0 && slices.Max(others) > noisyCores {
		fmt.Printf("WARNING: other processes used more than %.1f core during some rounds: the figures are noisy; re-measure on a quiet machine.\n", noisyCores)
	}

	out := make([]*result, len(sides))
	for i, sd := range sides {
		row := &result{name: "token_vs_node_" + sd.name, unit: "tokens", concurrency: concurrency}
		for _, v := range by[sd] {
			row.merge(v.r)
		}
		slices.Sort(row.lat)
		row.targetText, row.verdict = "baseline", "info"
		if i == 0 {
			row.targetText = fmt.Sprintf("≥ %.0f× node", tokenVsNodeTarget)
			row.verdict = fmt.Sprintf("%s (%.2f×)", verdict, medRatio)
		}
		if sd.checkErr != nil {
			row.setupErr = fmt.Errorf("token check: %w", sd.checkErr)
			fmt.Printf("  %-20s %s FAILED the token check: %v\n", "token_vs_node", sd.name, sd.checkErr)
		}
		out[i] = row
	}
	return out
}

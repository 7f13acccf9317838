package main

// The device scenarios (RFC 8628): device code issuance at the device
// authorization endpoint, and the device's polls of the token endpoint
// while the user has not decided yet (authorization_pending), which are
// most of the device flow's traffic.
//
// Polls are measured honestly: the server answers slow_down to a device
// that polls sooner than its interval, so each worker polls its own pool
// of device codes in turn and never polls one code sooner than the
// interval the server announced. A slow_down answer is an error here (the
// load generator broke the rule), and so is any answer other than
// authorization_pending. When the pool is too small for the pace, workers
// wait, and the waits are counted and printed: the figure is then the
// pool's limit, not the server's.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// deviceClientID is the bench Caddyfile's public device client.
const deviceClientID = "bench-device"

// deviceGrant is the token endpoint grant type of RFC 8628 §3.4.
const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceCodes is the -device-codes flag: how many device codes the
// workers of device_poll_pending share.
var deviceCodes int

// devicePaced counts device_poll_pending polls that had to wait for their
// code's interval (the pool was too small for the pace); deviceSlowDowns
// counts slow_down answers.
var devicePaced, deviceSlowDowns atomic.Int64

var deviceAuthBody = url.Values{"client_id": {deviceClientID}, "scope": {"openid"}}.Encode()

var userCodeFormat = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

func (lg *loadgen) deviceAuthorize(ctx context.Context) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lg.base+"/oauth/device/code", strings.NewReader(deviceAuthBody))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return lg.client.Do(req)
}

// newDeviceCode asks for one device code and checks the response.
func (lg *loadgen) newDeviceCode(ctx context.Context) (*deviceAuthResponse, error) {
	resp, err := lg.deviceAuthorize(ctx)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /oauth/device/code: status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var da deviceAuthResponse
	if err := json.Unmarshal(body, &da); err != nil {
		return nil, fmt.Errorf("POST /oauth/device/code: %w", err)
	}
	if da.DeviceCode == "" || !userCodeFormat.MatchString(da.UserCode) || da.VerificationURI == "" || da.Interval <= 0 || da.ExpiresIn <= 0 {
		return nil, fmt.Errorf("POST /oauth/device/code: incomplete response %s", body)
	}
	return &da, nil
}

func deviceCodeWorker(_ context.Context, lg *loadgen, _ int) (func(context.Context) error, error) {
	return func(ctx context.Context) error {
		resp, err := lg.deviceAuthorize(ctx)
		if err != nil {
			return err
		}
		return drain(resp, http.StatusOK)
	}, nil
}

func deviceCodePreflight(ctx context.Context, lg *loadgen) error {
	_, err := lg.newDeviceCode(ctx)
	return err
}

// poll sends one device code poll and returns the error code of the
// answer.
func (lg *loadgen) poll(ctx context.Context, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, lg.base+"/oauth/token", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := lg.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	var e struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(raw, &e) != nil || e.Error == "" {
		return "", fmt.Errorf("poll: status %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return e.Error, nil
}

func pollBody(deviceCode string) string {
	return url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}, "client_id": {deviceClientID}}.Encode()
}

// pollWorker is one worker of device_poll_pending: its own device codes,
// polled in turn, each at most once per interval.
type pollWorker struct {
	lg       *loadgen
	bodies   []string
	last     []time.Time
	next     int
	interval time.Duration
}

func devicePollWorker(ctx context.Context, lg *loadgen, _ int) (func(context.Context) error, error) {
	n := max(deviceCodes/max(benchConcurrency, 1), 1)
	w := &pollWorker{lg: lg, bodies: make([]string, n), last: make([]time.Time, n)}
	for i := range n {
		da, err := lg.newDeviceCode(ctx)
		if err != nil {
			return nil, err
		}
		w.bodies[i] = pollBody(da.DeviceCode)
		w.interval = time.Duration(da.Interval) * time.Second
	}
	return w.op, nil
}

func (w *pollWorker) op(ctx context.Context) error {
	i := w.next
	w.next = (w.next + 1) % len(w.bodies)
	if wait := time.Until(w.last[i].Add(w.interval)); wait > 0 {
		devicePaced.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	w.last[i] = time.Now()
	code, err := w.lg.poll(ctx, w.bodies[i])
	switch {
	case err != nil:
		return err
	case code == "slow_down":
		deviceSlowDowns.Add(1)
		return errors.New("slow_down: a code was polled sooner than its interval")
	case code != "authorization_pending":
		return fmt.Errorf("poll: %s, want authorization_pending", code)
	}
	return nil
}

// devicePollPreflight checks the rule the scenario relies on: a first poll
// is authorization_pending, an immediate second one slow_down.
func devicePollPreflight(ctx context.Context, lg *loadgen) error {
	da, err := lg.newDeviceCode(ctx)
	if err != nil {
		return err
	}
	for i, want := range []string{"authorization_pending", "slow_down"} {
		code, err := lg.poll(ctx, pollBody(da.DeviceCode))
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("poll %d of a fresh device code: %s, want %s", i+1, code, want)
		}
	}
	if deviceCodes/max(benchConcurrency, 1) < 1 {
		return fmt.Errorf("-device-codes %d is fewer than the workers", deviceCodes)
	}
	if da.Interval > 1 {
		fmt.Printf("  %-20s note: the server's interval is %d s; %d codes allow at most %d polls/s\n",
			"device_poll_pending", da.Interval, deviceCodes, deviceCodes/da.Interval)
	}
	return nil
}

// printDeviceNotes prints what the result table does not show.
func printDeviceNotes() {
	if n := devicePaced.Load(); n > 0 {
		fmt.Printf("  %-20s %d polls waited for their code's interval: the pool of %d codes, not the server, set the pace (raise -device-codes)\n",
			"device_poll_pending", n, deviceCodes)
	}
	if n := deviceSlowDowns.Load(); n > 0 {
		fmt.Printf("  %-20s %d slow_down answers (counted as errors)\n", "device_poll_pending", n)
	}
}

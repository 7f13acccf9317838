package main

// The device scenarios (RFC 8628): device code issuance at the device
// authorization endpoint, and the device's polls of the token endpoint
// while the user has not decided yet (authorization_pending), which are
// most of the device flow's traffic.
//
// Polls are paced as pacedPolls says.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"
)

// deviceClientID is the bench Caddyfile's public device client.
const deviceClientID = "bench-device"

// deviceGrant is the token endpoint grant type of RFC 8628 §3.4.
const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceCodes is the -device-codes flag: how many device codes the
// workers of device_poll_pending share.
var deviceCodes int

// devicePolls is the device_poll_pending scenario.
var devicePolls = &pacedPolls{name: "device_poll_pending", noun: "code", flag: "-device-codes", pool: &deviceCodes}

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
	return lg.postForm(ctx, "/oauth/device/code", "", deviceAuthBody)
}

// newDeviceCode asks for one device code and checks the response.
func (lg *loadgen) newDeviceCode(ctx context.Context) (*deviceAuthResponse, error) {
	resp, err := lg.deviceAuthorize(ctx)
	if err != nil {
		return nil, err
	}
	var da deviceAuthResponse
	body, err := readOK(resp, "POST /oauth/device/code", &da)
	if err != nil {
		return nil, err
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

func pollBody(deviceCode string) string {
	return url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}, "client_id": {deviceClientID}}.Encode()
}

func devicePollWorker(ctx context.Context, lg *loadgen, _ int) (func(context.Context) error, error) {
	return devicePolls.worker(ctx, lg, func(ctx context.Context, _ int) (pendingPoll, error) {
		da, err := lg.newDeviceCode(ctx)
		if err != nil {
			return pendingPoll{}, err
		}
		return pendingPoll{body: pollBody(da.DeviceCode), interval: time.Duration(da.Interval) * time.Second}, nil
	})
}

// devicePollPreflight checks the rule the scenario relies on: a first poll
// is authorization_pending, an immediate second one slow_down.
func devicePollPreflight(ctx context.Context, lg *loadgen) error {
	da, err := lg.newDeviceCode(ctx)
	if err != nil {
		return err
	}
	return devicePolls.preflight(ctx, lg, pollBody(da.DeviceCode), "device code", da.Interval)
}

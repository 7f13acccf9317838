package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// gatewayMetrics counts the login gateway's events in Caddy's Prometheus
// registry, labelled by provider.
type gatewayMetrics struct {
	issuer                                string
	started, succeeded, failed, refreshes *prometheus.CounterVec
	rejected                              *prometheus.CounterVec
}

func counterVec(reg *prometheus.Registry, name, help string, labels ...string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portcullis", Subsystem: "gateway", Name: name, Help: help}, labels)
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector.(*prometheus.CounterVec), nil
		}
		return nil, err
	}
	return c, nil
}

func gatewayMetricsFor(reg *prometheus.Registry, issuer string) (*gatewayMetrics, error) {
	m := &gatewayMetrics{issuer: issuer}
	var err error
	if m.started, err = counterVec(reg, "logins_started_total", "Logins sent to the provider.", "provider"); err != nil {
		return nil, err
	}
	if m.succeeded, err = counterVec(reg, "logins_succeeded_total", "Logins completed.", "provider"); err != nil {
		return nil, err
	}
	if m.failed, err = counterVec(reg, "logins_failed_total", "Logins that failed, by reason.", "provider", "reason"); err != nil {
		return nil, err
	}
	if m.refreshes, err = counterVec(reg, "token_refreshes_total", "Token refreshes, by result.", "provider", "result"); err != nil {
		return nil, err
	}
	if m.rejected, err = counterVec(reg, "sessions_rejected_total", "Session cookies refused (tampered, foreign, expired).", "provider"); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *gatewayMetrics) LoginStarted()   { m.started.WithLabelValues(m.issuer).Inc() }
func (m *gatewayMetrics) LoginSucceeded() { m.succeeded.WithLabelValues(m.issuer).Inc() }
func (m *gatewayMetrics) LoginFailed(reason string) {
	m.failed.WithLabelValues(m.issuer, reason).Inc()
}
func (m *gatewayMetrics) Refreshed(ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.refreshes.WithLabelValues(m.issuer, result).Inc()
}
func (m *gatewayMetrics) SessionRejected() { m.rejected.WithLabelValues(m.issuer).Inc() }

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
	return subsystemCounterVec(reg, "gateway", name, help, labels...)
}

// subsystemCounterVec registers portcullis_<subsystem>_<name>, or returns
// the one a previous config (before a reload) registered.
func subsystemCounterVec(reg *prometheus.Registry, subsystem, name, help string, labels ...string) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portcullis", Subsystem: subsystem, Name: name, Help: help}, labels)
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

// guardMetrics counts the API guard's events in Caddy's Prometheus
// registry, labelled by issuer.
type guardMetrics struct {
	issuer                                     string
	allowed, refused, introspections, jwksGets *prometheus.CounterVec
}

func guardCounterVec(reg *prometheus.Registry, name, help string, labels ...string) (*prometheus.CounterVec, error) {
	return subsystemCounterVec(reg, "guard", name, help, labels...)
}

func guardMetricsFor(reg *prometheus.Registry, issuer string) (*guardMetrics, error) {
	m := &guardMetrics{issuer: issuer}
	var err error
	if m.allowed, err = guardCounterVec(reg, "requests_allowed_total", "Requests with a valid token, by token kind (jwt, opaque).", "issuer", "kind"); err != nil {
		return nil, err
	}
	if m.refused, err = guardCounterVec(reg, "requests_refused_total", "Requests refused, by error code.", "issuer", "code"); err != nil {
		return nil, err
	}
	if m.introspections, err = guardCounterVec(reg, "introspections_total", "Introspection calls (cache misses), by result.", "issuer", "result"); err != nil {
		return nil, err
	}
	if m.jwksGets, err = guardCounterVec(reg, "jwks_fetches_total", "JWKS fetches, by result.", "issuer", "result"); err != nil {
		return nil, err
	}
	return m, nil
}

func result(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

func (m *guardMetrics) Allowed(kind string) { m.allowed.WithLabelValues(m.issuer, kind).Inc() }
func (m *guardMetrics) Refused(code string) { m.refused.WithLabelValues(m.issuer, code).Inc() }
func (m *guardMetrics) Introspected(ok bool) {
	m.introspections.WithLabelValues(m.issuer, result(ok)).Inc()
}
func (m *guardMetrics) KeysFetched(ok bool) { m.jwksGets.WithLabelValues(m.issuer, result(ok)).Inc() }

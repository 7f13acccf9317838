package flows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// Ping and push delivery (CIBA Core §10.2, §10.3, §12) and the
// authenticator webhook go through one notifier. What is to be sent is
// queued in the store (the outbox) in the same transaction as what caused
// it, so nothing is lost to a crash or restart; a decision also wakes the
// notifier in-process, so that its notification goes out at once rather
// than at the next scan. The scan (every second) picks up retries and
// whatever a wake-up missed.

const (
	// cibaMaxAttempts bounds the deliveries of one notification.
	cibaMaxAttempts = 6
	// cibaFirstRetry is the wait after the first failure; each further
	// failure waits four times longer (1 s, 4 s, 16 s, 64 s, 256 s).
	cibaFirstRetry = time.Second
	// cibaScanEvery is how often the outbox is scanned for due entries.
	cibaScanEvery = time.Second
	// cibaScanBatch bounds the entries one scan starts.
	cibaScanBatch = 256
	// cibaDeliverers bounds the deliveries in flight.
	cibaDeliverers = 32
	// cibaWakeQueue bounds the wake-ups waiting; past it the scan catches
	// up.
	cibaWakeQueue = 4096
	// maxNotifyResponse bounds what is read of a receiver's answer.
	maxNotifyResponse = 4 << 10
)

type cibaNotifier struct {
	s      *Server
	client *http.Client
	wake   chan string // notification ids to deliver now
	slots  chan struct{}

	mu       sync.Mutex
	inFlight map[string]struct{}
	wg       sync.WaitGroup
}

func newCIBANotifier(s *Server, client *http.Client) *cibaNotifier {
	return &cibaNotifier{s: s, client: client, wake: make(chan string, cibaWakeQueue),
		slots: make(chan struct{}, cibaDeliverers), inFlight: map[string]struct{}{}}
}

// wakeUp asks for notification id to be delivered now. It never blocks:
// when the queue is full the next scan finds it.
func (n *cibaNotifier) wakeUp(id string) {
	select {
	case n.wake <- id:
	default:
	}
}

// run delivers notifications until ctx is done, then waits for the
// deliveries in flight. Its first scan retries at once whatever failed
// before a restart.
func (n *cibaNotifier) run(ctx context.Context) {
	defer n.wg.Wait()
	n.scan(ctx, true)
	t := time.NewTicker(cibaScanEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-n.wake:
			n.start(ctx, id, false)
		case <-t.C:
			n.scan(ctx, false)
		}
	}
}

// scan starts the due notifications; after a restart (retryNow), also
// those that failed before, whenever their retry was due.
func (n *cibaNotifier) scan(ctx context.Context, retryNow bool) {
	now := n.s.now()
	due := now
	if retryNow {
		due = now.Add(cibaNotifyWindow)
	}
	list, err := n.s.store.ListDueCIBANotifications(ctx, due, cibaScanBatch)
	if err != nil {
		if ctx.Err() == nil {
			n.s.log.Error("listing due CIBA notifications", zap.Error(err))
		}
		return
	}
	for _, note := range list {
		if note.NextAttemptAt.After(now) && note.Attempts == 0 {
			continue // not due, and not a retry
		}
		n.start(ctx, note.ID, retryNow)
	}
}

// start delivers notification id on a goroutine of its own, unless it is
// in flight already or (unless force) not due.
func (n *cibaNotifier) start(ctx context.Context, id string, force bool) {
	n.mu.Lock()
	if _, busy := n.inFlight[id]; busy {
		n.mu.Unlock()
		return
	}
	n.inFlight[id] = struct{}{}
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			delete(n.inFlight, id)
			n.mu.Unlock()
		}()
		select {
		case n.slots <- struct{}{}:
			defer func() { <-n.slots }()
		case <-ctx.Done():
			return
		}
		// Read again: a delivery that finished since the caller read the
		// outbox has removed it.
		fresh, err := n.s.store.GetCIBANotification(ctx, id)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				n.s.log.Error("reading a CIBA notification", zap.Error(err))
			}
			return
		}
		if !force && fresh.NextAttemptAt.After(n.s.now()) {
			return // rescheduled since it was listed
		}
		n.deliver(ctx, fresh)
	}()
}

// outbound is one HTTP POST a notification makes.
type outbound struct {
	url, contentType, bearer string
	body                     []byte
	// issued is the grant of pushed tokens, revoked if they are never
	// delivered.
	issued string
}

// deliver sends one notification and removes it, or schedules a retry.
func (n *cibaNotifier) deliver(ctx context.Context, note *store.CIBANotification) {
	s := n.s
	log := s.log.With(zap.String("notification", note.ID), zap.String("kind", note.Kind), zap.String("client", note.ClientID))
	out, done, err := n.prepare(ctx, note)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("preparing a CIBA notification", zap.Error(err))
			n.retry(ctx, note, nil, log)
		}
		return
	}
	if done {
		n.remove(ctx, note, log)
		return
	}
	status, err := n.post(ctx, out)
	if err == nil && status >= 200 && status < 300 {
		log.Info("CIBA notification delivered", zap.Int("status", status), zap.Int("attempt", note.Attempts+1))
		n.remove(ctx, note, log)
		return
	}
	if ctx.Err() != nil && err != nil {
		// Shutting down: the next start retries it.
		n.keepPayload(note, out)
		_ = s.store.UpdateCIBANotification(context.WithoutCancel(ctx), note)
		return
	}
	if err != nil {
		log.Warn("CIBA notification not delivered", zap.Int("attempt", note.Attempts+1), zap.Error(err))
	} else {
		log.Warn("CIBA notification refused by the receiver", zap.Int("attempt", note.Attempts+1), zap.Int("status", status))
	}
	n.retry(ctx, note, out, log)
}

// keepPayload keeps a pushed token response for the retry: the tokens are
// issued once, so a retry must send the same ones.
func (n *cibaNotifier) keepPayload(note *store.CIBANotification, out *outbound) {
	if out == nil || out.issued == "" || note.Payload != "" {
		return
	}
	if sealed, err := n.s.ciba.sealer.Encode(cibaPayloadName, string(out.body)); err == nil {
		note.Payload = sealed
	}
}

// retry schedules the next attempt, or gives up after cibaMaxAttempts or
// the notification's expiry. Pushed tokens that are never delivered are
// revoked.
func (n *cibaNotifier) retry(ctx context.Context, note *store.CIBANotification, out *outbound, log *zap.Logger) {
	s := n.s
	next := *note
	next.Attempts++
	wait := cibaFirstRetry
	for range next.Attempts - 1 {
		wait *= 4
	}
	next.NextAttemptAt = s.now().Add(wait)
	if next.Attempts >= cibaMaxAttempts || !next.NextAttemptAt.Before(note.ExpiresAt) {
		log.Error("CIBA notification given up", zap.Int("attempts", next.Attempts))
		if out != nil && out.issued != "" {
			if err := s.store.RevokeGrant(ctx, out.issued); err != nil {
				log.Error("revoking undelivered pushed tokens", zap.Error(err))
			}
		} else if grant := n.pushedGrant(ctx, note); grant != "" {
			_ = s.store.RevokeGrant(ctx, grant)
		}
		n.remove(ctx, note, log)
		return
	}
	n.keepPayload(&next, out)
	if err := s.store.UpdateCIBANotification(ctx, &next); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error("rescheduling a CIBA notification", zap.Error(err))
	}
}

// pushedGrant is the grant of the tokens a push result carries, "" for
// other notifications.
func (n *cibaNotifier) pushedGrant(ctx context.Context, note *store.CIBANotification) string {
	if note.Kind != store.CIBANotifyResult || note.Payload == "" {
		return ""
	}
	if r, err := n.s.store.GetCIBARequest(ctx, note.RequestDigest); err == nil {
		return r.GrantID
	}
	return ""
}

func (n *cibaNotifier) remove(ctx context.Context, note *store.CIBANotification, log *zap.Logger) {
	if err := n.s.store.DeleteCIBANotification(context.WithoutCancel(ctx), note.ID); err != nil {
		log.Error("removing a CIBA notification", zap.Error(err))
	}
}

// cibaPayloadName binds a sealed pushed payload to its purpose.
const cibaPayloadName = "ciba_push_payload"

// prepare builds what note sends. done reports that there is nothing (any
// more) to send: the request was decided, deleted, or its client gone.
func (n *cibaNotifier) prepare(ctx context.Context, note *store.CIBANotification) (out *outbound, done bool, err error) {
	s := n.s
	r, err := s.store.GetCIBARequest(ctx, note.RequestDigest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	client, err := s.store.GetClient(ctx, r.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if note.Kind == store.CIBANotifyWebhook {
		if r.Status != store.CIBAPending || !store.Live(r.CodeExpiresAt, s.now()) {
			return nil, true, nil // decided already: the app has nothing to ask
		}
		return s.webhookCall(client, r)
	}
	// Only the endpoint the client registered is ever called: nothing in
	// a request can name another (no SSRF).
	endpoint := client.BackchannelClientNotificationEndpoint
	if endpoint == "" || (r.DeliveryMode != store.CIBAModePing && r.DeliveryMode != store.CIBAModePush) {
		return nil, true, nil
	}
	if err := CheckNotificationURL(endpoint, s.ciba.cfg.InsecureNotificationEndpoints); err != nil {
		s.log.Error("CIBA notification endpoint refused", zap.String("client", client.ID), zap.Error(err))
		return nil, true, nil
	}
	authReqID, err := s.unsealAuthReqID(r)
	if err != nil {
		return nil, false, err
	}
	out = &outbound{url: endpoint, contentType: "application/json", bearer: r.NotificationToken}
	var body any
	switch note.Kind {
	case store.CIBANotifyExpiry:
		if r.Status != store.CIBAPending {
			return nil, true, nil
		}
		if store.Live(r.CodeExpiresAt, s.now()) {
			return nil, true, s.store.UpdateCIBANotification(ctx, &store.CIBANotification{
				ID: note.ID, Kind: note.Kind, RequestDigest: note.RequestDigest, ClientID: note.ClientID,
				NextAttemptAt: r.CodeExpiresAt, CreatedAt: note.CreatedAt, ExpiresAt: note.ExpiresAt,
			})
		}
		body = cibaErrorBody(r.DeliveryMode, authReqID, "expired_token", "the request expired before the user decided")
	case store.CIBANotifyResult:
		if r.DeliveryMode == store.CIBAModePing {
			// §10.2: the ping body is the auth_req_id alone.
			body = map[string]string{"auth_req_id": authReqID}
			break
		}
		if r.Status == store.CIBADenied {
			// §12: "access_denied: The end-user denied the authorization
			// request."
			body = cibaErrorBody(r.DeliveryMode, authReqID, "access_denied", "the user denied the request")
			break
		}
		return n.pushTokens(ctx, note, client, r, out, authReqID)
	default:
		return nil, true, nil
	}
	if out.body, err = json.Marshal(body); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// cibaErrorBody is a push error payload (§12) or, in ping mode, the ping
// that sends the client to the token endpoint to learn the outcome.
func cibaErrorBody(mode, authReqID, code, description string) any {
	if mode == store.CIBAModePing {
		return map[string]string{"auth_req_id": authReqID}
	}
	return map[string]string{"error": code, "error_description": description, "auth_req_id": authReqID}
}

// pushTokens issues the tokens of an approved push request, once, and
// builds the §10.3.1 payload: the token response plus auth_req_id. A retry
// sends the payload kept from the first attempt.
func (n *cibaNotifier) pushTokens(ctx context.Context, note *store.CIBANotification, client *store.Client, r *store.CIBARequest, out *outbound, authReqID string) (*outbound, bool, error) {
	s := n.s
	if note.Payload != "" {
		var body string
		if err := s.ciba.sealer.Decode(cibaPayloadName, note.Payload, &body); err != nil {
			return nil, false, err
		}
		out.body, out.issued = []byte(body), r.GrantID
		return out, false, nil
	}
	var body any
	taken, err := s.store.TakeCIBARequest(ctx, r.Digest)
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		// Issued by an attempt that stopped before it could keep the
		// payload (a crash): those tokens were never delivered.
		if err := s.store.RevokeGrant(ctx, r.GrantID); err != nil {
			return nil, false, err
		}
		body = cibaErrorBody(r.DeliveryMode, authReqID, "transaction_failed", "the tokens could not be delivered; make a new request")
	case errors.Is(err, store.ErrNotFound):
		body = cibaErrorBody(r.DeliveryMode, authReqID, "expired_token", "the request expired before the tokens could be issued")
	case errors.Is(err, store.ErrNotApproved):
		return nil, true, nil
	case err != nil:
		return nil, false, err
	default:
		resp, err := s.issueCIBA(ctx, client, taken, "", true)
		if err != nil {
			oe := asOAuth(err)
			if oe.Status >= 500 {
				return nil, false, err
			}
			// The user was disabled or the API removed meanwhile.
			body = cibaErrorBody(r.DeliveryMode, authReqID, "access_denied", oe.Description)
			break
		}
		s.log.Info("backchannel authentication tokens issued for push", zap.String("request", r.ID), zap.String("client", r.ClientID), zap.String("sub", r.Subject))
		out.issued = r.GrantID
		body = struct {
			*TokenResponse
			AuthReqID string `json:"auth_req_id"`
		}{resp, authReqID}
	}
	if out.body, err = json.Marshal(body); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// post sends out and returns the receiver's status. The body is never
// logged: it may hold tokens.
func (n *cibaNotifier) post(ctx context.Context, out *outbound) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, out.url, bytes.NewReader(out.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", out.contentType)
	if out.bearer != "" {
		// §10.2, §10.3: "Authorization: Bearer" with the
		// client_notification_token.
		req.Header.Set("Authorization", "Bearer "+out.bearer)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, scrubURLError(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxNotifyResponse))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// scrubURLError drops the query from a transport error: the webhook's
// decision links are not in it, but a notification endpoint's query could
// hold something the operator does not want logged.
func scrubURLError(err error) error {
	msg := err.Error()
	if i := strings.IndexByte(msg, '?'); i >= 0 {
		if j := strings.IndexAny(msg[i:], "\": "); j > 0 {
			msg = msg[:i] + msg[i+j:]
		} else {
			msg = msg[:i]
		}
	}
	return errors.New(msg)
}

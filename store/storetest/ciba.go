package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// --- backchannel authentication requests (CIBA) ---

// newCIBA returns a pending CIBA request of subject whose code expires at
// codeExp and whose record expires at exp.
func newCIBA(n int, subject string, codeExp, exp time.Time) *store.CIBARequest {
	return &store.CIBARequest{
		Digest: fmt.Sprintf("ciba-digest-%02d", n), ID: fmt.Sprintf("ciba-id-%02d", n),
		ClientID: "backend", Scopes: []string{"openid", "profile"}, Audience: "https://api.example",
		Subject: subject, BindingMessage: "<b>W4SCT</b>", DeliveryMode: store.CIBAModePush,
		NotificationToken: "notify-token", SealedAuthReqID: "sealed", Interval: 5, Status: store.CIBAPending,
		GrantID: fmt.Sprintf("grant-ciba-%02d", n), CreatedAt: t0.Add(time.Duration(n) * time.Second),
		CodeExpiresAt: codeExp, ExpiresAt: exp,
	}
}

func newNote(id, kind string, due, exp time.Time) *store.CIBANotification {
	return &store.CIBANotification{ID: id, Kind: kind, RequestDigest: "ciba-digest-01", ClientID: "backend",
		NextAttemptAt: due, CreatedAt: t0, ExpiresAt: exp}
}

// cibaDecision is the named user's decision.
func cibaDecision(subject string, approved bool) store.CIBADecision {
	return store.CIBADecision{Approved: approved, Subject: subject, AuthTime: t0.Add(-time.Minute), SessionID: "sid",
		Via: "page", At: t0.Add(time.Minute)}
}

func cibaDecided(r *store.CIBARequest, d store.CIBADecision) *store.CIBARequest {
	cp := *r
	cp.Status = store.CIBADenied
	if d.Approved {
		cp.Status = store.CIBAApproved
	}
	cp.AuthTime, cp.SessionID, cp.DecidedVia, cp.DecidedAt = d.AuthTime, d.SessionID, d.Via, d.At
	return &cp
}

func ids(list []*store.CIBARequest) []string {
	out := make([]string, len(list))
	for i, r := range list {
		out[i] = r.ID
	}
	return out
}

func noteIDs(list []*store.CIBANotification) []string {
	out := make([]string, len(list))
	for i, n := range list {
		out[i] = n.ID
	}
	return out
}

func testCIBARequests(t *testing.T, o opener) {
	codeExp, exp := t0.Add(5*time.Minute), t0.Add(15*time.Minute)
	runAll(t, o, []subtest{
		{"PutCIBARequest then get by digest, by id and in the subject's pending list", func(t *testing.T, f *fixture) {
			want := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, want, 5), "PutCIBARequest")
			got, err := f.s.GetCIBARequest(f.ctx, want.Digest)
			ok(t, err, "GetCIBARequest")
			same(t, got, want, "GetCIBARequest")
			got, err = f.s.GetCIBARequestByID(f.ctx, want.ID)
			ok(t, err, "GetCIBARequestByID")
			same(t, got, want, "GetCIBARequestByID")
			list, err := f.s.ListCIBARequests(f.ctx, "alice")
			ok(t, err, "ListCIBARequests")
			same(t, ids(list), []string{want.ID}, "alice's pending requests")
			list, err = f.s.ListCIBARequests(f.ctx, "bob")
			ok(t, err, "ListCIBARequests bob")
			same(t, ids(list), []string{}, "bob's pending requests")
		}},
		{"unknown digest and id are ErrNotFound", func(t *testing.T, f *fixture) {
			_, err := f.s.GetCIBARequest(f.ctx, "nope")
			is(t, err, store.ErrNotFound, "GetCIBARequest")
			_, err = f.s.GetCIBARequestByID(f.ctx, "nope")
			is(t, err, store.ErrNotFound, "GetCIBARequestByID")
			_, err = f.s.DecideCIBARequest(f.ctx, "nope", cibaDecision("alice", true), nil)
			is(t, err, store.ErrNotFound, "DecideCIBARequest")
			_, err = f.s.TakeCIBARequest(f.ctx, "nope")
			is(t, err, store.ErrNotFound, "TakeCIBARequest")
		}},
		{"a digest or id already in use is ErrConflict and keeps the original", func(t *testing.T, f *fixture) {
			want := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, want, 0), "PutCIBARequest")
			sameDigest := newCIBA(2, "bob", codeExp, exp)
			sameDigest.Digest = want.Digest
			is(t, f.s.PutCIBARequest(f.ctx, sameDigest, 0), store.ErrConflict, "same digest")
			sameID := newCIBA(3, "bob", codeExp, exp)
			sameID.ID = want.ID
			is(t, f.s.PutCIBARequest(f.ctx, sameID, 0), store.ErrConflict, "same id")
			got, err := f.s.GetCIBARequestByID(f.ctx, want.ID)
			ok(t, err, "GetCIBARequestByID")
			same(t, got, want, "the original")
			list, err := f.s.ListCIBARequests(f.ctx, "bob")
			ok(t, err, "ListCIBARequests")
			same(t, ids(list), []string{}, "nothing of the refused puts is listed")
		}},
		{"maxPending refuses a user's next request until one is decided or expires", func(t *testing.T, f *fixture) {
			for i := 1; i <= 3; i++ {
				ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(i, "alice", codeExp.Add(time.Duration(i)*time.Minute), exp.Add(time.Hour)), 3), "put")
			}
			is(t, f.s.PutCIBARequest(f.ctx, newCIBA(4, "alice", codeExp, exp), 3), store.ErrLimitReached, "fourth pending")
			ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(5, "bob", codeExp, exp), 3), "another user is not limited")
			_, err := f.s.DecideCIBARequest(f.ctx, "ciba-id-01", cibaDecision("alice", false), nil)
			ok(t, err, "decide one")
			ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(6, "alice", codeExp.Add(time.Hour), exp.Add(time.Hour)), 3), "after a decision")
			is(t, f.s.PutCIBARequest(f.ctx, newCIBA(7, "alice", codeExp, exp), 3), store.ErrLimitReached, "full again")
			f.clk.Set(codeExp.Add(2*time.Minute + time.Second)) // ciba-id-02 expired
			ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(8, "alice", codeExp.Add(time.Hour), exp.Add(time.Hour)), 3), "after an expiry")
		}},
		{"concurrent PutCIBARequest never exceeds maxPending", func(t *testing.T, f *fixture) {
			errs := make([]error, racers)
			race(racers, func(i int) { errs[i] = f.s.PutCIBARequest(f.ctx, newCIBA(i, "alice", codeExp, exp), 5) })
			if stored := len(winners(t, errs, store.ErrLimitReached)); stored != 5 {
				t.Fatalf("%d of %d concurrent requests stored, want exactly the limit 5", stored, racers)
			}
		}},
		{"the pending list is oldest first, and every subject's when empty", func(t *testing.T, f *fixture) {
			ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(3, "bob", codeExp, exp), 0), "put")
			ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(2, "alice", codeExp, exp), 0), "put")
			ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(1, "alice", codeExp, exp), 0), "put")
			list, err := f.s.ListCIBARequests(f.ctx, "alice")
			ok(t, err, "ListCIBARequests")
			same(t, ids(list), []string{"ciba-id-01", "ciba-id-02"}, "alice's")
			list, err = f.s.ListCIBARequests(f.ctx, "")
			ok(t, err, "ListCIBARequests all")
			same(t, ids(list), []string{"ciba-id-01", "ciba-id-02", "ciba-id-03"}, "everyone's")
		}},
		{"past CodeExpiresAt: not listed, not decided, not taken, but readable until ExpiresAt", func(t *testing.T, f *fixture) {
			want := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, want, 0), "put")
			f.clk.Set(codeExp)
			list, err := f.s.ListCIBARequests(f.ctx, "alice")
			ok(t, err, "ListCIBARequests")
			same(t, ids(list), []string{}, "listed after expiry")
			_, err = f.s.DecideCIBARequest(f.ctx, want.ID, cibaDecision("alice", true), nil)
			is(t, err, store.ErrNotFound, "DecideCIBARequest after expiry")
			_, err = f.s.TakeCIBARequest(f.ctx, want.Digest)
			is(t, err, store.ErrNotFound, "TakeCIBARequest after expiry")
			got, err := f.s.GetCIBARequest(f.ctx, want.Digest)
			ok(t, err, "GetCIBARequest after the code expired")
			same(t, got, want, "unchanged by the refused decision")
			f.clk.Set(exp)
			_, err = f.s.GetCIBARequest(f.ctx, want.Digest)
			is(t, err, store.ErrNotFound, "GetCIBARequest at ExpiresAt")
			_, err = f.s.GetCIBARequestByID(f.ctx, want.ID)
			is(t, err, store.ErrNotFound, "GetCIBARequestByID at ExpiresAt")
		}},
		{"only the subject the request names can decide it", func(t *testing.T, f *fixture) {
			want := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, want, 0), "put")
			_, err := f.s.DecideCIBARequest(f.ctx, want.ID, cibaDecision("bob", true), nil)
			is(t, err, store.ErrNotFound, "bob deciding alice's request")
			got, err := f.s.GetCIBARequestByID(f.ctx, want.ID)
			ok(t, err, "get")
			same(t, got, want, "still pending")
		}},
		{"decide once: the second decision is ErrAlreadyUsed and changes nothing", func(t *testing.T, f *fixture) {
			r := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, r, 0), "put")
			want := cibaDecided(r, cibaDecision("alice", true))
			got, err := f.s.DecideCIBARequest(f.ctx, r.ID, cibaDecision("alice", true), nil)
			ok(t, err, "approve")
			same(t, got, want, "approved")
			got, err = f.s.DecideCIBARequest(f.ctx, r.ID, cibaDecision("alice", false), nil)
			is(t, err, store.ErrAlreadyUsed, "deny after approve")
			same(t, got, want, "record returned with ErrAlreadyUsed")
			list, err := f.s.ListCIBARequests(f.ctx, "alice")
			ok(t, err, "list")
			same(t, ids(list), []string{}, "a decided request is not pending")
		}},
		{"a denied or pending request cannot be taken; an approved one once", func(t *testing.T, f *fixture) {
			pending, denied, approved := newCIBA(1, "alice", codeExp, exp), newCIBA(2, "alice", codeExp, exp), newCIBA(3, "alice", codeExp, exp)
			for _, r := range []*store.CIBARequest{pending, denied, approved} {
				ok(t, f.s.PutCIBARequest(f.ctx, r, 0), "put")
			}
			_, err := f.s.DecideCIBARequest(f.ctx, denied.ID, cibaDecision("alice", false), nil)
			ok(t, err, "deny")
			dec, err := f.s.DecideCIBARequest(f.ctx, approved.ID, cibaDecision("alice", true), nil)
			ok(t, err, "approve")
			_, err = f.s.TakeCIBARequest(f.ctx, pending.Digest)
			is(t, err, store.ErrNotApproved, "take pending")
			_, err = f.s.TakeCIBARequest(f.ctx, denied.Digest)
			is(t, err, store.ErrNotApproved, "take denied")
			got, err := f.s.TakeCIBARequest(f.ctx, approved.Digest)
			ok(t, err, "take approved")
			want := *dec
			want.Status = store.CIBAIssued
			same(t, got, &want, "taken")
			f.clk.Set(codeExp.Add(time.Minute))
			got, err = f.s.TakeCIBARequest(f.ctx, approved.Digest)
			is(t, err, store.ErrAlreadyUsed, "second take, after expiry")
			same(t, got, &want, "record returned with ErrAlreadyUsed")
		}},
		{"concurrent decisions: exactly one wins", func(t *testing.T, f *fixture) {
			r := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, r, 0), "put")
			errs := make([]error, racers)
			race(racers, func(i int) {
				_, errs[i] = f.s.DecideCIBARequest(f.ctx, r.ID, cibaDecision("alice", i%2 == 0),
					newNote(fmt.Sprintf("result-%02d", i), store.CIBANotifyResult, t0, exp))
			})
			soleWinner(t, errs, store.ErrAlreadyUsed, "decisions")
			due, err := f.s.ListDueCIBANotifications(f.ctx, t0.Add(time.Hour), 100)
			ok(t, err, "ListDueCIBANotifications")
			if len(due) != 1 {
				t.Fatalf("%d result notifications queued, want only the winner's", len(due))
			}
		}},
		{"concurrent takes: exactly one succeeds", func(t *testing.T, f *fixture) {
			r := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, r, 0), "put")
			_, err := f.s.DecideCIBARequest(f.ctx, r.ID, cibaDecision("alice", true), nil)
			ok(t, err, "approve")
			errs := make([]error, racers)
			race(racers, func(i int) { _, errs[i] = f.s.TakeCIBARequest(f.ctx, r.Digest) })
			soleWinner(t, errs, store.ErrAlreadyUsed, "takes")
		}},
		{"a decision replaces the expiry notification by its result", func(t *testing.T, f *fixture) {
			r := newCIBA(1, "alice", codeExp, exp)
			r.ExpiryNotificationID = "expiry-1"
			ok(t, f.s.PutCIBARequest(f.ctx, r, 0, newNote("expiry-1", store.CIBANotifyExpiry, codeExp, exp),
				newNote("webhook-1", store.CIBANotifyWebhook, t0, exp)), "put")
			due, err := f.s.ListDueCIBANotifications(f.ctx, codeExp, 10)
			ok(t, err, "due")
			same(t, noteIDs(due), []string{"webhook-1", "expiry-1"}, "queued with the request, earliest first")
			_, err = f.s.DecideCIBARequest(f.ctx, r.ID, cibaDecision("alice", true), newNote("result-1", store.CIBANotifyResult, t0.Add(time.Second), exp))
			ok(t, err, "decide")
			due, err = f.s.ListDueCIBANotifications(f.ctx, codeExp, 10)
			ok(t, err, "due")
			same(t, noteIDs(due), []string{"webhook-1", "result-1"}, "after the decision")
		}},
		{"Sweep collects requests, their indexes and notifications", func(t *testing.T, f *fixture) {
			r := newCIBA(1, "alice", codeExp, exp)
			ok(t, f.s.PutCIBARequest(f.ctx, r, 1, newNote("expiry-1", store.CIBANotifyExpiry, codeExp, exp)), "put")
			n, err := f.s.Sweep(f.ctx, exp.Add(time.Minute))
			ok(t, err, "Sweep")
			if n != 2 {
				t.Fatalf("Sweep removed %d records, want 2 (the request and its notification)", n)
			}
			_, err = f.s.GetCIBARequestByID(f.ctx, r.ID)
			is(t, err, store.ErrNotFound, "by id after Sweep")
			due, err := f.s.ListDueCIBANotifications(f.ctx, exp, 10)
			ok(t, err, "due after Sweep")
			same(t, noteIDs(due), []string{}, "no notification left")
			// The pending slot is free again, even with the clock at t0.
			ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(2, "alice", codeExp, exp), 1), "put after Sweep")
			ok(t, f.s.PutCIBARequest(f.ctx, r, 0), "the swept digest and id are free again")
		}},
	})
}

func testCIBANotifications(t *testing.T, o opener) {
	exp := t0.Add(time.Hour)
	put := func(t *testing.T, f *fixture, notes ...*store.CIBANotification) {
		t.Helper()
		ok(t, f.s.PutCIBARequest(f.ctx, newCIBA(1, "alice", t0.Add(5*time.Minute), exp), 0, notes...), "PutCIBARequest")
	}
	runAll(t, o, []subtest{
		{"ListDue returns the due ones, earliest first, up to the limit", func(t *testing.T, f *fixture) {
			put(t, f, newNote("c", store.CIBANotifyResult, t0.Add(3*time.Second), exp),
				newNote("a", store.CIBANotifyResult, t0.Add(time.Second), exp),
				newNote("b", store.CIBANotifyResult, t0.Add(2*time.Second), exp),
				newNote("later", store.CIBANotifyResult, t0.Add(time.Minute), exp))
			due, err := f.s.ListDueCIBANotifications(f.ctx, t0.Add(3*time.Second), 10)
			ok(t, err, "due")
			same(t, noteIDs(due), []string{"a", "b", "c"}, "due")
			due, err = f.s.ListDueCIBANotifications(f.ctx, t0.Add(time.Hour), 2)
			ok(t, err, "limited")
			same(t, noteIDs(due), []string{"a", "b"}, "limited")
		}},
		{"Update reschedules; Delete removes; both after delivery are harmless", func(t *testing.T, f *fixture) {
			n := newNote("a", store.CIBANotifyResult, t0, exp)
			put(t, f, n)
			later := *n
			later.Attempts, later.NextAttemptAt, later.Payload = 1, t0.Add(time.Minute), "sealed-body"
			ok(t, f.s.UpdateCIBANotification(f.ctx, &later), "Update")
			due, err := f.s.ListDueCIBANotifications(f.ctx, t0.Add(time.Second), 10)
			ok(t, err, "due now")
			same(t, noteIDs(due), []string{}, "rescheduled away")
			got, err := f.s.GetCIBANotification(f.ctx, "a")
			ok(t, err, "Get")
			same(t, got, &later, "updated")
			due, err = f.s.ListDueCIBANotifications(f.ctx, t0.Add(time.Minute), 10)
			ok(t, err, "due later")
			same(t, due, []*store.CIBANotification{&later}, "due at its new time")
			ok(t, f.s.DeleteCIBANotification(f.ctx, "a"), "Delete")
			_, err = f.s.GetCIBANotification(f.ctx, "a")
			is(t, err, store.ErrNotFound, "Get after Delete")
			ok(t, f.s.DeleteCIBANotification(f.ctx, "a"), "second Delete")
			is(t, f.s.UpdateCIBANotification(f.ctx, &later), store.ErrNotFound, "Update after Delete")
		}},
		{"an expired notification is not due", func(t *testing.T, f *fixture) {
			put(t, f, newNote("a", store.CIBANotifyResult, t0, t0.Add(time.Minute)))
			f.clk.Set(t0.Add(time.Minute))
			due, err := f.s.ListDueCIBANotifications(f.ctx, t0.Add(time.Hour), 10)
			ok(t, err, "due")
			same(t, noteIDs(due), []string{}, "expired")
		}},
	})
}

package coffer

import (
	"errors"
	"testing"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// TestObserve: every connection's end is reported once, with its outcome
// and the bucket that refused it, and handshakes in flight are counted.
func TestObserve(t *testing.T) {
	ends := make(chan SessionEnd, 16)
	fx := newFixture(t, 1, noLimits, func(s *Server) {
		s.ClientLimit = Limit{Rate: 1e-9, Burst: 1}
		s.Observe = func(e SessionEnd) { ends <- e }
	})
	next := func() SessionEnd {
		t.Helper()
		select {
		case e := <-ends:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no SessionEnd within 10s")
		}
		return SessionEnd{}
	}
	if _, err := fx.fetch(t, fx.config(0)); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Outcome != OutcomeOK || e.Limit != "" || e.Duration <= 0 {
		t.Errorf("first session: got %+v, want ok with no limit and a duration", e)
	}
	var re *RemoteError
	if _, err := fx.fetch(t, fx.config(0)); !errors.As(err, &re) || re.Code != frame.CodeBusy {
		t.Fatalf("second session: got %v, want Error{busy}", err)
	}
	if e := next(); e.Outcome != OutcomeError || e.Limit != LimitPerClient {
		t.Errorf("second session: got %+v, want error refused by %s", e, LimitPerClient)
	}

	c := fx.dial(t)
	deadline := time.Now().Add(10 * time.Second)
	for fx.srv.HandshakesInFlight() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("handshakes in flight: got %d, want 1 with a silent connection open", fx.srv.HandshakesInFlight())
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if e := next(); e.Outcome != OutcomeError || e.Limit != "" {
		t.Errorf("silent connection: got %+v, want error with no limit", e)
	}
	if n := fx.srv.HandshakesInFlight(); n != 0 {
		t.Errorf("handshakes in flight after the close: got %d, want 0", n)
	}
}

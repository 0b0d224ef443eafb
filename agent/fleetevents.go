package agent

import (
	"slices"
	"strings"
	"time"

	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/fleet/api"
)

// HistoryCalls makes the call history a source of the calls the event
// export sends the fleet (events.WithFleetCalls): each ended call's start,
// direction, duration, whether it was answered, and the other party's
// number when its URI's user part is one (E.164 with '+' or digits; a
// name or an unknown caller sends no number). What that costs in privacy:
// the fleet learns whom the phone called and who called it, when and for
// how long, and keeps it until its anomaly detector has read it (the
// detector itself keeps only keyed hashes of numbers and counts per
// country). Leave it out where that is not wanted: the security events go
// all the same.
func HistoryCalls(b *history.Book) events.CallSource { return historyCalls{b} }

type historyCalls struct{ b *history.Book }

// CallsAfter lists the calls after seq (the history's seq + 1, so the
// first call is 1), oldest first.
func (h historyCalls) CallsAfter(seq uint64, limit int) ([]api.CallRecord, error) {
	entries, err := h.b.List(history.MaxEntries, "")
	if err != nil {
		return nil, err
	}
	var out []api.CallRecord
	for _, e := range entries {
		s := e.Seq + 1
		if s <= seq {
			continue
		}
		c := api.CallRecord{Seq: s, Start: e.Start.UTC(), Direction: e.Direction, Number: callNumber(e.Peer), Answered: e.Answered}
		if e.Answered {
			c.DurationSeconds = uint32(min(max(e.Duration, 0), 24*time.Hour) / time.Second)
		}
		if c.Validate() == nil {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b api.CallRecord) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// callNumber is the user part of a sip:, sips: or tel: URI (with or
// without a display name and angle brackets) when it is a number, else "".
func callNumber(peer string) string {
	if i := strings.IndexByte(peer, '<'); i >= 0 {
		peer = peer[i+1:]
		if j := strings.IndexByte(peer, '>'); j >= 0 {
			peer = peer[:j]
		}
	}
	low := strings.ToLower(peer)
	for _, scheme := range []string{"sips:", "sip:", "tel:"} {
		if strings.HasPrefix(low, scheme) {
			peer = peer[len(scheme):]
			break
		}
	}
	if i := strings.IndexAny(peer, "@;?"); i >= 0 {
		peer = peer[:i]
	}
	if peer == "" || len(peer) > api.MaxCallNumber {
		return ""
	}
	for i := 0; i < len(peer); i++ {
		if c := peer[i]; !(c >= '0' && c <= '9' || c == '*' || c == '#' || c == '+' && i == 0 && len(peer) > 1) {
			return ""
		}
	}
	return peer
}

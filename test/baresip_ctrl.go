package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// baresipCommandTimeout bounds the wait for a ctrl_tcp response.
const baresipCommandTimeout = 10 * time.Second

// Event is one event baresip reported over ctrl_tcp.
type Event struct {
	// Type is e.g. REGISTER_OK, REGISTER_FAIL, CALL_INCOMING,
	// CALL_ESTABLISHED, CALL_MENC, CALL_CLOSED.
	Type       string `json:"type"`
	Class      string `json:"class"`
	AccountAoR string `json:"accountaor"`
	Direction  string `json:"direction"`
	PeerURI    string `json:"peeruri"`
	ID         string `json:"id"`
	// Param is the detail: the status line of REGISTER_FAIL, the reason of
	// CALL_CLOSED, the suite of CALL_MENC.
	Param string `json:"param"`
	// At is when the harness read the event off the socket.
	At time.Time `json:"-"`
	// Raw is the event's JSON as baresip sent it.
	Raw json.RawMessage `json:"-"`
}

// Response is baresip's answer to a ctrl_tcp command.
type Response struct {
	OK    bool   `json:"ok"`
	Data  string `json:"data"`
	Token string `json:"token"`
}

// baresipCtrl is a ctrl_tcp client: netstring-framed JSON, commands answered
// by responses carrying the command's token, events interleaved.
type baresipCtrl struct {
	conn net.Conn

	// wmu serialises commands; the token counter is guarded by it.
	wmu   sync.Mutex
	token int

	responses chan Response

	// mu guards the fields below.
	mu       sync.Mutex
	events   []Event
	consumed []bool
	// changed is closed and replaced whenever events grows or the reader
	// stops.
	changed chan struct{}
	readErr error // set when the reader stopped
}

func newBaresipCtrl(conn net.Conn) *baresipCtrl {
	c := &baresipCtrl{
		conn:      conn,
		responses: make(chan Response, 16),
		changed:   make(chan struct{}),
	}
	go c.read()
	return c
}

func (c *baresipCtrl) close() { c.conn.Close() }

func (c *baresipCtrl) read() {
	r := bufio.NewReader(c.conn)
	var err error
	for {
		var msg []byte
		msg, err = readNetstring(r)
		if err != nil {
			break
		}
		at := time.Now()
		var kind struct {
			Event    bool `json:"event"`
			Response bool `json:"response"`
		}
		if jerr := json.Unmarshal(msg, &kind); jerr != nil {
			continue // not JSON; ctrl_tcp sends nothing else
		}
		switch {
		case kind.Response:
			var resp Response
			if json.Unmarshal(msg, &resp) == nil {
				c.responses <- resp
			}
		case kind.Event:
			ev := Event{At: at, Raw: append(json.RawMessage(nil), msg...)}
			if json.Unmarshal(msg, &ev) == nil {
				c.mu.Lock()
				c.events = append(c.events, ev)
				c.consumed = append(c.consumed, false)
				close(c.changed)
				c.changed = make(chan struct{})
				c.mu.Unlock()
			}
		}
	}
	c.mu.Lock()
	c.readErr = err
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	close(c.responses)
}

// readNetstring reads one "LEN:DATA," frame.
func readNetstring(r *bufio.Reader) ([]byte, error) {
	head, err := r.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[:len(head)-1]))
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("netstring length %q", head)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("netstring of %d bytes ends in %q, want ','", n, buf[n])
	}
	return buf[:n], nil
}

func (c *baresipCtrl) command(cmd, params string) (Response, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.token++
	tok := "hp" + strconv.Itoa(c.token)
	msg, err := json.Marshal(struct {
		Command string `json:"command"`
		Params  string `json:"params,omitempty"`
		Token   string `json:"token"`
	}{cmd, params, tok})
	if err != nil {
		return Response{}, err
	}
	frame := strconv.Itoa(len(msg)) + ":" + string(msg) + ","
	if err := c.conn.SetWriteDeadline(time.Now().Add(baresipCommandTimeout)); err != nil {
		return Response{}, err
	}
	if _, err := io.WriteString(c.conn, frame); err != nil {
		return Response{}, fmt.Errorf("send %s: %w", cmd, err)
	}
	timeout := time.After(baresipCommandTimeout)
	for {
		select {
		case resp, ok := <-c.responses:
			if !ok {
				return Response{}, errors.New("ctrl_tcp connection closed")
			}
			if resp.Token == tok {
				return resp, nil
			}
			// A response to an earlier command that timed out.
		case <-timeout:
			return Response{}, fmt.Errorf("no response to %s in %v", cmd, baresipCommandTimeout)
		}
	}
}

// Command sends a ctrl_tcp command (a long menu command name such as
// "reginfo", "dial", "hangup", "callstat") and returns baresip's response.
func (b *Baresip) Command(t testing.TB, cmd, params string) Response {
	t.Helper()
	resp, err := b.ctrl.command(cmd, params)
	if err != nil {
		t.Fatalf("baresip %s: command %s %s: %v\n--- log ---\n%s", b.o.user, cmd, params, err, b.proc.logTail(4000))
	}
	return resp
}

// Dial calls uri (e.g. "sip:bob@127.0.0.1") through the outbound proxy.
func (b *Baresip) Dial(t testing.TB, uri string) {
	t.Helper()
	if resp := b.Command(t, "dial", uri); !resp.OK {
		t.Fatalf("baresip %s: dial %s: %s", b.o.user, uri, resp.Data)
	}
}

// Hangup ends the current call.
func (b *Baresip) Hangup(t testing.TB) {
	t.Helper()
	if resp := b.Command(t, "hangup", ""); !resp.OK {
		t.Fatalf("baresip %s: hangup: %s", b.o.user, resp.Data)
	}
}

// WaitEvent returns the oldest event of type typ not yet returned by
// WaitEvent, waiting up to timeout for it to arrive.
func (b *Baresip) WaitEvent(t testing.TB, typ string, timeout time.Duration) Event {
	t.Helper()
	ev, err := b.ctrl.waitEvent(timeout, func(ev Event) bool { return ev.Type == typ })
	if err != nil {
		t.Fatalf("baresip %s: WaitEvent(%s): %v\nevents so far:\n%s\n--- log ---\n%s", b.o.user, typ, err, b.eventList(), b.proc.logTail(4000))
	}
	return ev
}

// WaitEventFunc is WaitEvent for the first unreturned event match accepts.
func (b *Baresip) WaitEventFunc(t testing.TB, timeout time.Duration, match func(Event) bool) Event {
	t.Helper()
	ev, err := b.ctrl.waitEvent(timeout, match)
	if err != nil {
		t.Fatalf("baresip %s: WaitEventFunc: %v\nevents so far:\n%s\n--- log ---\n%s", b.o.user, err, b.eventList(), b.proc.logTail(4000))
	}
	return ev
}

// Events returns every event received so far.
func (b *Baresip) Events() []Event {
	b.ctrl.mu.Lock()
	defer b.ctrl.mu.Unlock()
	return append([]Event(nil), b.ctrl.events...)
}

func (b *Baresip) eventList() string {
	var s strings.Builder
	for _, ev := range b.Events() {
		fmt.Fprintf(&s, "  %s %s\n", ev.At.Format("15:04:05.000"), ev.Raw)
	}
	return s.String()
}

func (c *baresipCtrl) waitEvent(timeout time.Duration, match func(Event) bool) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i, ev := range c.events {
			if !c.consumed[i] && match(ev) {
				c.consumed[i] = true
				c.mu.Unlock()
				return ev, nil
			}
		}
		changed, rerr := c.changed, c.readErr
		c.mu.Unlock()
		if rerr != nil {
			return Event{}, fmt.Errorf("ctrl_tcp connection closed: %w", rerr)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return Event{}, fmt.Errorf("no such event in %v", timeout)
		}
	}
}

// WaitRegistered waits until the account's latest registration event is
// REGISTER_OK, returning at once when it already is; a REGISTER_FAIL as the
// latest fails the test at once. It does not consume events.
func (b *Baresip) WaitRegistered(t testing.TB, timeout time.Duration) {
	t.Helper()
	latest, err := b.ctrl.waitLatest(timeout, "REGISTER_OK", "REGISTER_FAIL")
	if err == nil && latest.Type != "REGISTER_OK" {
		err = fmt.Errorf("%s %s", latest.Type, latest.Param)
	}
	if err != nil {
		t.Fatalf("baresip %s: not registered: %v\nevents so far:\n%s\n--- log ---\n%s", b.o.user, err, b.eventList(), b.proc.logTail(4000))
	}
}

// waitLatest waits until some event has one of types and returns the latest
// such event.
func (c *baresipCtrl) waitLatest(timeout time.Duration, types ...string) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := len(c.events) - 1; i >= 0; i-- {
			for _, typ := range types {
				if c.events[i].Type == typ {
					ev := c.events[i]
					c.mu.Unlock()
					return ev, nil
				}
			}
		}
		changed, rerr := c.changed, c.readErr
		c.mu.Unlock()
		if rerr != nil {
			return Event{}, fmt.Errorf("ctrl_tcp connection closed: %w", rerr)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return Event{}, fmt.Errorf("no %v event in %v", types, timeout)
		}
	}
}

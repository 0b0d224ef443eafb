package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/update"
)

// DefaultTimeout bounds a request whose context has no deadline. An install
// takes longer: give its context a deadline of its own.
const DefaultTimeout = 10 * time.Second

// maxResponseBytes bounds an answer: a status with many calls is tens of KiB.
const maxResponseBytes = 4 << 20

// Client talks to the agent listening on one control socket.
type Client struct {
	path string
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client { return &Client{path: path} }

// Path is the socket the client talks to.
func (c *Client) Path() string { return c.path }

// dial connects, with ErrNoAgent when nothing listens.
func (c *Client) dial(ctx context.Context) (*net.UnixConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (%s): %v", ErrNoAgent, c.path, err)
		}
		return nil, fmt.Errorf("control socket %s: %w", c.path, err)
	}
	return conn.(*net.UnixConn), nil
}

// Do sends req and decodes the answer's result into out (nil to discard).
func (c *Client) Do(ctx context.Context, req Request, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	br, werr := c.send(conn, req)
	// A server that refuses a caller answers without reading the request:
	// the write may fail while the refusal waits to be read.
	resp, err := readResponse(br)
	if err != nil {
		return c.ctxErr(ctx, errors.Join(werr, err))
	}
	if resp.Error != nil {
		return resp.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Result, out); err != nil {
		return fmt.Errorf("control %s: decode result: %w", req.Command, err)
	}
	return nil
}

func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("control socket %s: %w", c.path, ctx.Err())
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}

// send writes req and returns the reader for the answer, also when the
// write failed (the answer may already be there).
func (c *Client) send(conn net.Conn, req Request) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(io.LimitReader(conn, maxResponseBytes), 64<<10)
	req.V = Version
	b, err := json.Marshal(req)
	if err != nil {
		return br, err
	}
	_, err = conn.Write(append(b, '\n'))
	return br, err
}

func readResponse(br *bufio.Reader) (*Response, error) {
	line, err := br.ReadBytes('\n')
	if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if resp.V != Version {
		return nil, fmt.Errorf("agent speaks protocol version %d, this client %d", resp.V, Version)
	}
	return &resp, nil
}

// Status asks for the agent's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	return &st, c.Do(ctx, Request{Command: CmdStatus}, &st)
}

// Call runs a call command (CmdCallAnswer, CmdCallHangup, CmdCallHold,
// CmdCallUnhold, CmdCallSwap) and returns the call's state after it. call is a Call-ID
// or, where two dialogs share one, the call's dialog as status shows it
// (CALL-ID;LOCAL-TAG;REMOTE-TAG; a Call-ID never contains ';').
func (c *Client) Call(ctx context.Context, cmd Command, account, call string) (*sip.CallStatus, error) {
	var cs sip.CallStatus
	return &cs, c.Do(ctx, Request{Command: cmd, Call: callRef(account, call)}, &cs)
}

// callRef names a call as Call takes it: a Call-ID, or a dialog.
func callRef(account, call string) *CallRef {
	ref := &CallRef{Account: account, CallID: call}
	if id, _, ok := strings.Cut(call, ";"); ok {
		ref.CallID, ref.Dialog = id, call
	}
	return ref
}

// Transfer transfers call to target (blind) and returns the call's state
// once the peer accepted. call is named as Call names it.
func (c *Client) Transfer(ctx context.Context, account, call, target string) (*sip.CallStatus, error) {
	var cs sip.CallStatus
	return &cs, c.Do(ctx, Request{Command: CmdCallTransfer, Call: callRef(account, call), Transfer: &TransferArgs{Target: target}}, &cs)
}

// TransferTo transfers call to the party of our call to (attended: the
// transferred party replaces that call) and returns the call's state once
// the peer accepted. Both are named as Call names them.
func (c *Client) TransferTo(ctx context.Context, account, call, to string) (*sip.CallStatus, error) {
	var cs sip.CallStatus
	return &cs, c.Do(ctx, Request{Command: CmdCallTransfer, Call: callRef(account, call), Transfer: &TransferArgs{To: callRef(account, to)}}, &cs)
}

// UpdateStatus asks for the updater's status.
func (c *Client) UpdateStatus(ctx context.Context) (*update.Status, error) {
	var st update.Status
	return &st, c.Do(ctx, Request{Command: CmdUpdateStatus}, &st)
}

// UpdateMarkGood marks the booted slot good and returns the new status.
func (c *Client) UpdateMarkGood(ctx context.Context) (*update.Status, error) {
	var st update.Status
	return &st, c.Do(ctx, Request{Command: CmdUpdateMarkGood}, &st)
}

// UpdateInstall installs the bundle file at path (absolute, on the phone).
func (c *Client) UpdateInstall(ctx context.Context, path string, force bool) (*update.InstallResult, error) {
	var res update.InstallResult
	return &res, c.Do(ctx, Request{Command: CmdUpdateInstall, Install: &InstallArgs{Bundle: path, Force: force}}, &res)
}

// Watch streams events to fn until ctx ends, fn returns an error, or the
// agent stops; it returns nil when ctx ended.
func (c *Client) Watch(ctx context.Context, fn func(Event) error) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	br, werr := c.send(conn, Request{Command: CmdWatch})
	resp, err := readResponse(br)
	if err != nil {
		return c.ctxErr(ctx, errors.Join(werr, err))
	}
	if resp.Error != nil {
		return resp.Error
	}
	dec := json.NewDecoder(br)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control socket %s: event stream: %w", c.path, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// EventsList asks for security-event journal records, each in the JSON
// shape events.Record marshals to.
func (c *Client) EventsList(ctx context.Context, from uint64, limit int) ([]json.RawMessage, error) {
	var recs []json.RawMessage
	return recs, c.Do(ctx, Request{Command: CmdEventsList, Events: &EventsArgs{From: from, Limit: limit}}, &recs)
}

// EventsVerify has the agent prove its journal.
func (c *Client) EventsVerify(ctx context.Context) (*events.Report, error) {
	var r events.Report
	return &r, c.Do(ctx, Request{Command: CmdEventsVerify}, &r)
}

// Dial places a call through the agent and returns its state once it is
// established (or the error that ended it). ctx bounds the wait.
func (c *Client) Dial(ctx context.Context, account, target string) (*sip.CallStatus, error) {
	var cs sip.CallStatus
	return &cs, c.Do(ctx, Request{Command: CmdCallDial, Dial: &DialArgs{Account: account, Target: target}}, &cs)
}

// DTMF sends digits on a call.
func (c *Client) DTMF(ctx context.Context, account, callID, digits string) (*sip.CallStatus, error) {
	var cs sip.CallStatus
	return &cs, c.Do(ctx, Request{Command: CmdCallDTMF, Call: callRef(account, callID), DTMF: digits}, &cs)
}

// History returns up to limit calls whose peer contains search, newest
// first.
func (c *Client) History(ctx context.Context, search string, limit int) ([]history.Entry, error) {
	var es []history.Entry
	return es, c.Do(ctx, Request{Command: CmdHistory, Search: search, Limit: limit}, &es)
}

// Contacts returns the contacts matching search.
func (c *Client) Contacts(ctx context.Context, search string) ([]history.Contact, error) {
	var cs []history.Contact
	return cs, c.Do(ctx, Request{Command: CmdContacts, Search: search}, &cs)
}

// ImportContacts imports the vCard file at path (on the phone) and returns
// how many contacts it added or replaced.
func (c *Client) ImportContacts(ctx context.Context, path string) (int, error) {
	var n int
	return n, c.Do(ctx, Request{Command: CmdContactsImport, Import: &ImportArgs{Path: path}}, &n)
}

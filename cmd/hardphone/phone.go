package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

// cmdPhone is the terminal phone: a client of the control protocol that
// attaches to the running agent, or runs one in this process (its log then
// goes to a file, not the terminal). Everything it does is a control
// command, so scripts and other front ends do the same things.
func cmdPhone(args []string, stdout, stderr io.Writer) (err error) {
	fs := cli.NewFlagSet("phone", "hardphone phone --config FILE [--log-file FILE] [--audio pulse|alsa|none] [--mic NAME] [--speaker NAME]", stderr)
	var cf commonFlags
	cf.register(fs)
	var af audioFlags
	af.register(fs)
	logFile := fs.String("log-file", "", "where the agent logs when the phone runs it (default: STATE_DIR/phone.log)")
	if _, err := parse(fs, args, stdout, 0, 0); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if cfg.ControlSocket == "" {
		return errors.New("the terminal phone needs control_socket in the config")
	}
	c := control.NewClient(cfg.ControlSocket)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, serr := c.Status(ctx)
	if serr == nil && af.set() {
		return usagef("an agent already runs on %s and talks through its own config's sound device; --audio, --mic and --speaker apply when the phone runs the agent (stop the agent, or set [audio] in its config)", cfg.ControlSocket)
	}
	if err := af.apply(cfg); err != nil {
		return err
	}
	if errors.Is(serr, control.ErrNoAgent) {
		// No agent runs: run one here, logging to a file.
		path := *logFile
		if path == "" {
			path = filepath.Join(cfg.StateDir, "phone.log")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		lf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("agent log: %w", err)
		}
		defer lf.Close()
		log, err := newLogger(lf, "text", cf.logLevel)
		if err != nil {
			return err
		}
		ph, err := system.Open(cfg, log)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, ph.Close()) }()
		ag, err := ph.Agent(system.Daemon, version)
		if err != nil {
			return err
		}
		agentCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- ag.Run(agentCtx) }()
		defer func() { cancel(); <-done }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := c.Status(ctx); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the agent did not start; see %s", path)
			}
			select {
			case err := <-done:
				return fmt.Errorf("the agent stopped: %v; see %s", err, path)
			case <-time.After(100 * time.Millisecond):
			}
		}
	} else if serr != nil {
		return serr
	}
	ui := newPhoneUI(ctx, c)
	return ui.run()
}

// callKeys is the calls pane's title: its keys.
// It is repeated on the message line when the pane gets the focus, for a
// terminal too narrow for the whole title.
const callKeys = " calls: a answer r reject h hang up o hold m mute s swap t/x transfer 0-9*# DTMF "

// phoneUI is the terminal phone's screen and state. The tview application
// owns the widgets: every change goes through app.QueueUpdateDraw.
type phoneUI struct {
	ctx context.Context
	c   *control.Client
	app *tview.Application

	accounts *tview.Table
	calls    *tview.Table
	dial     *tview.InputField
	hist     *tview.Table
	search   *tview.InputField
	msg      *tview.TextView
	pages    *tview.Pages

	mu    sync.Mutex       // guards shown
	shown []sip.CallStatus // the calls in the table, in row order
	acct  []string         // account names, in row order (for their calls)

	// histAsked numbers history refreshes as they start; histShown (UI
	// goroutine only) is the newest drawn, so a slow older answer never
	// overwrites a newer one.
	histAsked atomic.Uint64
	histShown uint64
	// The same for status refreshes: statSet (under mu) for shown,
	// statShown (UI goroutine only) for the tables.
	statAsked atomic.Uint64
	statSet   uint64
	statShown uint64
	// prompted is the dialog of the call the incoming prompt asks about,
	// "" when none is shown (UI goroutine only). The prompt goes away by
	// itself once that call no longer rings: answered by the agent (auto
	// answer, a call that replaces another), cancelled or ended.
	prompted string
	// promptGen is statAsked when the prompt went up: only a status asked
	// for later can say the call stopped ringing.
	promptGen uint64
}

func newPhoneUI(ctx context.Context, c *control.Client) *phoneUI {
	u := &phoneUI{ctx: ctx, c: c, app: tview.NewApplication()}
	u.accounts = tview.NewTable().SetSelectable(false, false)
	u.accounts.SetBorder(true).SetTitle(" accounts ")
	u.calls = tview.NewTable().SetSelectable(true, false)
	u.calls.SetBorder(true).SetTitle(callKeys)
	u.dial = tview.NewInputField().SetLabel("dial: ").SetFieldWidth(0)
	u.dial.SetBorder(true).SetTitle(" number or sip: URI, Enter to call ")
	u.hist = tview.NewTable().SetSelectable(true, false)
	u.hist.SetBorder(true).SetTitle(" history (Enter calls back) ")
	u.search = tview.NewInputField().SetLabel("search: ").SetFieldWidth(0)
	u.search.SetBorder(true).SetTitle(" history and contacts ")
	u.msg = tview.NewTextView().SetDynamicColors(false)
	u.msg.SetText("Tab moves between panes; q in a table quits")

	left := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.accounts, 5, 0, false).
		AddItem(u.calls, 0, 1, false).
		AddItem(u.dial, 3, 0, true)
	right := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.search, 3, 0, false).
		AddItem(u.hist, 0, 1, false)
	body := tview.NewFlex().AddItem(left, 0, 3, true).AddItem(right, 0, 2, false)
	root := tview.NewFlex().SetDirection(tview.FlexRow).AddItem(body, 0, 1, true).AddItem(u.msg, 1, 0, false)
	u.pages = tview.NewPages().AddPage("main", root, true, true)
	u.app.SetRoot(u.pages, true).SetFocus(u.dial)

	focus := []tview.Primitive{u.dial, u.calls, u.search, u.hist}
	u.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if front, _ := u.pages.GetFrontPage(); front != "main" {
			return ev // a prompt has the keys
		}
		if ev.Key() == tcell.KeyTab {
			cur := u.app.GetFocus()
			for i, p := range focus {
				if p == cur {
					u.app.SetFocus(focus[(i+1)%len(focus)])
					return nil
				}
			}
			u.app.SetFocus(u.dial)
			return nil
		}
		return ev
	})
	u.dial.SetDoneFunc(func(k tcell.Key) {
		if k != tcell.KeyEnter {
			return
		}
		target := strings.TrimSpace(u.dial.GetText())
		if target == "" {
			return
		}
		u.dial.SetText("")
		u.place(target)
	})
	u.calls.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if ev.Key() != tcell.KeyRune {
			return ev
		}
		r := ev.Rune()
		switch {
		case r == 'q':
			u.app.Stop()
		case r == 'a':
			u.act(control.CmdCallAnswer, "answered")
		case r == 'r', r == 'h':
			u.act(control.CmdCallHangup, "hung up")
		case r == 'o':
			u.toggleHold()
		case r == 'm':
			u.toggleMute()
		case r == 's':
			u.act(control.CmdCallSwap, "talking to")
		case r == 't':
			u.askTransfer()
		case r == 'x':
			u.attendedTransfer()
		case strings.ContainsRune("0123456789*#", r):
			u.dtmf(string(r))
		default:
			return ev
		}
		return nil
	})
	u.calls.SetFocusFunc(func() { u.msg.SetText("keys:" + strings.TrimPrefix(callKeys, " calls:")) })
	u.search.SetChangedFunc(func(string) { go u.refreshHistory() })
	u.hist.SetSelectedFunc(func(row, _ int) {
		if cell := u.hist.GetCell(row, 2); cell != nil && cell.GetReference() != nil {
			u.place(cell.GetReference().(string))
		}
	})
	u.hist.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if ev.Key() == tcell.KeyRune && ev.Rune() == 'q' {
			u.app.Stop()
			return nil
		}
		return ev
	})
	return u
}

// run shows the screen until the user quits or the context ends.
func (u *phoneUI) run() error {
	go u.watch()
	go func() {
		<-u.ctx.Done()
		u.app.Stop()
	}()
	go u.refresh()
	go u.refreshHistory()
	return u.app.Run()
}

// say shows one line of feedback. It may be called from the UI's own
// event handlers, where queueing an update and waiting for it would
// deadlock, so it never waits.
func (u *phoneUI) say(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	go u.app.QueueUpdateDraw(func() { u.msg.SetText(text) })
}

// watch follows the agent's events and redraws; an incoming call asks the
// user to answer or reject it.
func (u *phoneUI) watch() {
	for u.ctx.Err() == nil {
		err := u.c.Watch(u.ctx, func(ev control.Event) error {
			if ev.Kind == sip.EventIncoming && ev.Call != nil {
				u.incoming(ev.Account, *ev.Call)
			}
			if ev.Kind == sip.EventTransfer && ev.Call != nil && ev.Call.Transfer != nil {
				x := ev.Call.Transfer
				u.say("transfer of %s to %s: %s", ev.Call.Peer, x.Target, transferText(x))
			}
			go u.refresh()
			if ev.Kind == control.EventHistory {
				go u.refreshHistory()
			}
			return nil
		})
		if err != nil && u.ctx.Err() == nil {
			u.say("agent: %v (retrying)", err)
			select {
			case <-u.ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}
}

// incoming pops a prompt for a ringing call.
func (u *phoneUI) incoming(account string, cs sip.CallStatus) {
	u.app.QueueUpdateDraw(func() {
		text := fmt.Sprintf("Incoming call from %s", cs.Peer)
		if cs.Waiting {
			text = fmt.Sprintf("Call waiting: %s\n(answering puts the other calls on hold)", cs.Peer)
		}
		m := tview.NewModal().SetText(text).
			AddButtons([]string{"Answer", "Reject"}).
			SetDoneFunc(func(_ int, label string) {
				u.pages.RemovePage("incoming")
				u.prompted = ""
				cmd, done := control.CmdCallHangup, "rejected"
				if label == "Answer" {
					cmd, done = control.CmdCallAnswer, "answered"
				}
				go func() {
					if _, err := u.c.Call(u.ctx, cmd, account, cs.Dialog); err != nil {
						u.say("%s: %v", strings.ToLower(label), err)
						return
					}
					u.say("%s %s", done, cs.Peer)
					u.refresh()
				}()
			})
		u.pages.AddPage("incoming", m, true, true)
		u.prompted, u.promptGen = cs.Dialog, u.statAsked.Load()
		go u.refresh() // the call may have stopped ringing already
	})
}

// place dials target through the agent, off the UI goroutine.
func (u *phoneUI) place(target string) {
	u.say("calling %s ...", target)
	go func() {
		ctx, cancel := context.WithTimeout(u.ctx, 2*time.Minute)
		defer cancel()
		cs, err := u.c.Dial(ctx, "", target)
		if err != nil {
			u.say("call %s: %v", target, err)
			return
		}
		u.say("in call with %s (%s)", cs.Peer, cs.Media.Suite)
		u.refresh()
	}()
}

// selected is the call under the cursor.
func (u *phoneUI) selected() (string, sip.CallStatus, bool) {
	row, _ := u.calls.GetSelection()
	u.mu.Lock()
	defer u.mu.Unlock()
	i := row - 1
	if i < 0 || i >= len(u.shown) {
		return "", sip.CallStatus{}, false
	}
	return u.acct[i], u.shown[i], true
}

func (u *phoneUI) act(cmd control.Command, done string) {
	acct, cs, ok := u.selected()
	if !ok {
		u.say("no call selected")
		return
	}
	go func() {
		if _, err := u.c.Call(u.ctx, cmd, acct, cs.Dialog); err != nil {
			u.say("%s: %v", cmd, err)
			return
		}
		u.say("%s %s", done, cs.Peer)
		u.refresh()
	}()
}

func (u *phoneUI) toggleHold() {
	acct, cs, ok := u.selected()
	if !ok {
		u.say("no call selected")
		return
	}
	cmd, done := control.CmdCallHold, "holding"
	if cs.Hold {
		cmd, done = control.CmdCallUnhold, "resumed"
	}
	go func() {
		if _, err := u.c.Call(u.ctx, cmd, acct, cs.Dialog); err != nil {
			u.say("%s: %v", cmd, err)
			return
		}
		u.say("%s %s", done, cs.Peer)
		u.refresh()
	}()
}

func (u *phoneUI) toggleMute() {
	acct, cs, ok := u.selected()
	if !ok {
		u.say("no call selected")
		return
	}
	cmd, done := control.CmdCallMute, "muted"
	if cs.Media.Muted {
		cmd, done = control.CmdCallUnmute, "unmuted"
	}
	go func() {
		if _, err := u.c.Call(u.ctx, cmd, acct, cs.Dialog); err != nil {
			u.say("%s: %v", cmd, err)
			return
		}
		u.say("%s %s", done, cs.Peer)
		u.refresh()
	}()
}

// askTransfer prompts for where to send the selected call (blind
// transfer) and sends it there.
func (u *phoneUI) askTransfer() {
	acct, cs, ok := u.selected()
	if !ok {
		u.say("no call selected")
		return
	}
	in := tview.NewInputField().SetLabel("to (number or sip: URI): ").SetFieldWidth(0)
	in.SetBorder(true).SetTitle(" transfer " + cs.Peer + " (Enter transfers, Esc cancels) ")
	in.SetDoneFunc(func(k tcell.Key) {
		target := strings.TrimSpace(in.GetText())
		u.pages.RemovePage("transfer")
		u.app.SetFocus(u.calls)
		if k != tcell.KeyEnter || target == "" {
			return
		}
		u.transfer(acct, cs, target, "")
	})
	u.pages.AddPage("transfer", centered(in, 80, 3), true, true)
	u.app.SetFocus(in)
}

// attendedTransfer sends the selected call to the party of another of the
// account's established calls (the consultation call), asking which when
// there are several.
func (u *phoneUI) attendedTransfer() {
	acct, cs, ok := u.selected()
	if !ok {
		u.say("no call selected")
		return
	}
	var others []sip.CallStatus
	u.mu.Lock()
	for i, c := range u.shown {
		if u.acct[i] == acct && c.Dialog != cs.Dialog && c.State == "established" {
			others = append(others, c)
		}
	}
	u.mu.Unlock()
	switch len(others) {
	case 0:
		u.say("attended transfer: call the target first (the call to transfer waits on hold)")
		return
	case 1:
		u.transfer(acct, cs, "", others[0].Dialog)
		return
	}
	labels := make([]string, 0, len(others)+1)
	for _, o := range others {
		labels = append(labels, o.Peer)
	}
	m := tview.NewModal().SetText("Transfer " + cs.Peer + " to").AddButtons(append(labels, "Cancel")).
		SetDoneFunc(func(i int, _ string) {
			u.pages.RemovePage("attended")
			u.app.SetFocus(u.calls)
			if i >= 0 && i < len(others) {
				u.transfer(acct, cs, "", others[i].Dialog)
			}
		})
	u.pages.AddPage("attended", m, true, true)
}

// transfer runs call.transfer: to target (blind) or to the call named by
// dialog (attended).
func (u *phoneUI) transfer(acct string, cs sip.CallStatus, target, dialog string) {
	u.say("transferring %s ...", cs.Peer)
	go func() {
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		defer cancel()
		var err error
		if dialog != "" {
			_, err = u.c.TransferTo(ctx, acct, cs.Dialog, dialog)
		} else {
			_, err = u.c.Transfer(ctx, acct, cs.Dialog, target)
		}
		if err != nil {
			u.say("transfer %s: %v", cs.Peer, err)
		}
		u.refresh()
	}()
}

// centered places p, w by h cells, in the middle of the screen.
func centered(p tview.Primitive, w, h int) tview.Primitive {
	return tview.NewFlex().
		AddItem(nil, 0, 1, false).
		AddItem(tview.NewFlex().SetDirection(tview.FlexRow).
			AddItem(nil, 0, 1, false).
			AddItem(p, h, 0, true).
			AddItem(nil, 0, 1, false), w, 0, true).
		AddItem(nil, 0, 1, false)
}

// transferText says where a transfer is, in a few words.
func transferText(x *sip.TransferStatus) string {
	switch x.State {
	case sip.TransferDone:
		return "done"
	case sip.TransferFailed:
		if x.Code != 0 {
			return fmt.Sprintf("failed (%d %s)", x.Code, x.Reason)
		}
		return "failed (" + x.Reason + ")"
	}
	return x.State
}

func (u *phoneUI) dtmf(digits string) {
	acct, cs, ok := u.selected()
	if !ok {
		u.say("no call selected")
		return
	}
	go func() {
		if _, err := u.c.DTMF(u.ctx, acct, cs.Dialog, digits); err != nil {
			u.say("dtmf: %v", err)
			return
		}
		u.say("sent %s", digits)
	}()
}

// refresh redraws accounts and calls from the agent's status.
func (u *phoneUI) refresh() {
	gen := u.statAsked.Add(1)
	st, err := u.c.Status(u.ctx)
	if err != nil {
		u.say("status: %v", err)
		return
	}
	var shown []sip.CallStatus
	var acct []string
	for _, a := range st.Accounts {
		for _, c := range a.Calls {
			shown, acct = append(shown, c), append(acct, a.Name)
		}
	}
	u.mu.Lock()
	if gen < u.statSet {
		u.mu.Unlock()
		return // a newer status is already in
	}
	u.statSet = gen
	u.shown, u.acct = shown, acct
	u.mu.Unlock()
	u.app.QueueUpdateDraw(func() {
		if gen < u.statShown {
			return
		}
		u.statShown = gen
		u.accounts.Clear()
		for i, a := range st.Accounts {
			reg := "not registered"
			if a.Registered {
				reg = "registered"
			} else if a.LastError != "" {
				reg = "not registered: " + a.LastError
			}
			u.accounts.SetCell(i, 0, tview.NewTableCell(a.Name))
			u.accounts.SetCell(i, 1, tview.NewTableCell(a.AOR))
			u.accounts.SetCell(i, 2, tview.NewTableCell(reg))
		}
		u.calls.Clear()
		for j, h := range []string{"dir", "peer", "state", "srtp", ""} {
			u.calls.SetCell(0, j, tview.NewTableCell(h).SetSelectable(false))
		}
		for i, c := range shown {
			state := c.State
			if c.Hold {
				state += " (held)"
			}
			if c.Media.Muted {
				state += " (muted)"
			}
			u.calls.SetCell(i+1, 0, tview.NewTableCell(c.Direction))
			u.calls.SetCell(i+1, 1, tview.NewTableCell(c.Peer))
			u.calls.SetCell(i+1, 2, tview.NewTableCell(state))
			u.calls.SetCell(i+1, 3, tview.NewTableCell(c.Media.Suite))
			info := ""
			switch {
			case c.Transfer != nil && c.Transfer.Role == sip.TransferRoleTransferor:
				info = "transfer to " + c.Transfer.Target + ": " + transferText(c.Transfer)
			case c.Transfer != nil:
				info = "transferred by the peer to " + c.Transfer.Target + ": " + transferText(c.Transfer)
			case c.Waiting && c.State == "ringing":
				info = "call waiting"
			}
			u.calls.SetCell(i+1, 4, tview.NewTableCell(info))
		}
		if len(shown) > 0 {
			if row, _ := u.calls.GetSelection(); row < 1 || row > len(shown) {
				u.calls.Select(1, 0)
			}
		}
		if u.prompted != "" && gen > u.promptGen && !slices.ContainsFunc(shown, func(c sip.CallStatus) bool {
			return c.Dialog == u.prompted && c.State == "ringing"
		}) {
			u.pages.RemovePage("incoming")
			u.prompted = ""
			u.app.SetFocus(u.calls)
		}
	})
}

// refreshHistory redraws the history filtered by the search field, with
// the contacts that match on top.
func (u *phoneUI) refreshHistory() {
	gen := u.histAsked.Add(1)
	var search string
	done := make(chan struct{})
	u.app.QueueUpdate(func() { search = u.search.GetText(); close(done) })
	select {
	case <-done:
	case <-u.ctx.Done():
		return
	}
	es, herr := u.c.History(u.ctx, search, 100)
	var cs []history.Contact
	if search != "" {
		cs, _ = u.c.Contacts(u.ctx, search) // no contacts book: only history is shown
	}
	u.app.QueueUpdateDraw(func() {
		if gen < u.histShown {
			return
		}
		u.histShown = gen
		u.hist.Clear()
		row := 0
		for _, c := range cs {
			for _, n := range c.Numbers {
				u.hist.SetCell(row, 0, tview.NewTableCell("contact"))
				u.hist.SetCell(row, 1, tview.NewTableCell(c.Name))
				u.hist.SetCell(row, 2, tview.NewTableCell(n).SetReference(n))
				row++
			}
		}
		for _, e := range es {
			what := outcomeOf(e)
			u.hist.SetCell(row, 0, tview.NewTableCell(e.Start.Local().Format("01-02 15:04")))
			u.hist.SetCell(row, 1, tview.NewTableCell(e.Direction+" "+what))
			u.hist.SetCell(row, 2, tview.NewTableCell(e.Peer).SetReference(e.Peer))
			row++
		}
		if herr != nil {
			u.msg.SetText("history: " + herr.Error())
		}
	})
}

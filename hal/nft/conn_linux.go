package nft

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Conn talks netlink to the nf_tables of the network namespace it was opened
// in. It is safe for concurrent use; mu serialises every batch so that a
// read-compare-write (Apply, DelPinholes) sees no interleaved change of ours.
type Conn struct {
	mu sync.Mutex
	nl *nftables.Conn // lasting netlink socket, bound to the opener's netns
}

// Open connects to nf_tables in the calling thread's network namespace. It
// needs CAP_NET_ADMIN for everything but reads.
func Open() (*Conn, error) {
	nl, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	return &Conn{nl: nl}, nil
}

// Close releases the netlink socket. The table stays in the kernel.
func (c *Conn) Close() error {
	if err := c.nl.CloseLasting(); err != nil {
		return fmt.Errorf("close nftables netlink socket: %w", err)
	}
	return nil
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// live is what the kernel holds of our table.
type live struct {
	exists bool
	lines  []string // in Describe's format
	pins   []Pinhole
}

func (c *Conn) tableExists() (bool, error) {
	t, err := c.liveTable()
	return t != nil, err
}

func (c *Conn) liveTable() (*nftables.Table, error) {
	ts, err := c.nl.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list inet tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == TableName {
			return t, nil
		}
	}
	return nil, nil
}

var hookNames = map[nftables.ChainHook]string{
	unix.NF_INET_PRE_ROUTING:  "prerouting",
	unix.NF_INET_LOCAL_IN:     "input",
	unix.NF_INET_FORWARD:      "forward",
	unix.NF_INET_LOCAL_OUT:    "output",
	unix.NF_INET_POST_ROUTING: "postrouting",
}

func chainLine(ch *nftables.Chain) string {
	if ch.Hooknum == nil {
		return fmt.Sprintf("chain %s { }", ch.Name)
	}
	hook, ok := hookNames[*ch.Hooknum]
	if !ok {
		hook = fmt.Sprintf("hook(%d)", *ch.Hooknum)
	}
	prio := "filter"
	if ch.Priority == nil || *ch.Priority != 0 {
		prio = "?"
		if ch.Priority != nil {
			prio = fmt.Sprint(int32(*ch.Priority))
		}
	}
	pol := "accept" // the kernel's default for a base chain
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		pol = "drop"
	}
	typ := string(ch.Type)
	return fmt.Sprintf("chain %s { type %s hook %s priority %s; policy %s; }", ch.Name, typ, hook, prio, pol)
}

func liveSetLine(s *nftables.Set) string {
	line := fmt.Sprintf("set %s { type %s; }", s.Name, s.KeyType.Name)
	if s.IsMap || s.Interval || s.HasTimeout || s.Constant || s.Dynamic || s.Anonymous {
		line += " (with flags)"
	}
	return line
}

// read returns the live table, naming each rule by its comment when its
// expressions are the ones wanted for that comment.
func (c *Conn) read(want []rule, sets map[string]*nftables.Set) (live, error) {
	var l live
	lt, err := c.liveTable()
	if err != nil || lt == nil {
		return l, err
	}
	l.exists = true
	if lt.Flags != 0 {
		// "dormant" turns every rule off; no flag of ours is ever set.
		l.lines = append(l.lines, fmt.Sprintf("table inet %s flags 0x%x", TableName, lt.Flags))
	}
	t := table()

	wantFP := map[string][]string{} // chain: text -> fingerprints
	for _, r := range want {
		es, err := r.exprs(sets)
		if err != nil {
			return l, err
		}
		fp, err := fingerprint(byte(t.Family), es)
		if err != nil {
			return l, err
		}
		k := r.chain + ": " + r.text
		wantFP[k] = append(wantFP[k], fp)
	}

	chains, err := c.nl.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return l, fmt.Errorf("list chains: %w", err)
	}
	var ours []*nftables.Chain
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == TableName {
			ours = append(ours, ch)
		}
	}
	// Describe lists chains in a fixed order; the kernel in creation order.
	order := map[string]int{ChainInput: 0, ChainForward: 1, ChainOutput: 2}
	sort.SliceStable(ours, func(i, j int) bool {
		oi, iok := order[ours[i].Name]
		oj, jok := order[ours[j].Name]
		if !iok {
			oi = 3
		}
		if !jok {
			oj = 3
		}
		return oi < oj
	})
	for _, ch := range ours {
		l.lines = append(l.lines, chainLine(ch))
	}

	kernelSets, err := c.nl.GetSets(t)
	if err != nil {
		return l, fmt.Errorf("list sets: %w", err)
	}
	sort.Slice(kernelSets, func(i, j int) bool { return kernelSets[i].Name < kernelSets[j].Name })
	for _, s := range kernelSets {
		l.lines = append(l.lines, liveSetLine(s))
		if s.Name != SetRTP4 && s.Name != SetRTP6 {
			continue
		}
		els, err := c.nl.GetSetElements(s)
		if err != nil {
			return l, fmt.Errorf("list set %s: %w", s.Name, err)
		}
		for _, e := range els {
			if p, ok := pinholeFromKey(e.Key); ok {
				l.pins = append(l.pins, p)
			}
		}
	}

	for _, ch := range ours {
		rules, err := c.nl.GetRules(t, ch)
		if err != nil {
			return l, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			comment := ruleComment(r.UserData)
			k := ch.Name + ": " + comment
			fp, err := fingerprint(byte(t.Family), r.Exprs)
			switch {
			case comment == "":
				l.lines = append(l.lines, fmt.Sprintf("%s: rule handle %d without comment", ch.Name, r.Handle))
			case err == nil && slices.Contains(wantFP[k], fp):
				l.lines = append(l.lines, k)
			default:
				l.lines = append(l.lines, fmt.Sprintf("%s [handle %d: expressions differ]", k, r.Handle))
			}
		}
	}
	return l, nil
}

// wantSets returns the pinhole sets of rs, keyed by name, with fresh batch
// IDs; nil when rs has no RTP range.
func wantSets(rs *Ruleset) map[string]*nftables.Set {
	if rs.RTP.IsZero() {
		return map[string]*nftables.Set{}
	}
	t := table()
	return map[string]*nftables.Set{
		SetRTP4: {Table: t, Name: SetRTP4, KeyType: ipv4Key, Concatenation: true},
		SetRTP6: {Table: t, Name: SetRTP6, KeyType: ipv6Key, Concatenation: true},
	}
}

// Diff returns what Apply(rs) would change, as "+ line" (missing) and
// "- line" (present but not wanted) in Describe's format. An empty result
// means the live table is exactly rs; pinhole elements are not compared.
func (c *Conn) Diff(rs Ruleset) ([]string, error) {
	if err := rs.validate(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.diff(&rs)
}

func (c *Conn) diff(rs *Ruleset) ([]string, error) {
	l, err := c.read(rs.rules(), wantSets(rs))
	if err != nil {
		return nil, err
	}
	d := lineDiff(rs.describe(), l.lines)
	if !l.exists {
		d = append([]string{"+ table inet " + TableName}, d...)
	}
	return d, nil
}

// Apply makes the hardphone table exactly rs and reports whether anything
// changed. When the live table already matches, nothing is written. Otherwise
// the table is deleted and rebuilt in one netlink transaction, so packets see
// either the old or the new ruleset; pinholes whose local port is still in
// the RTP range are carried over. Apply then reads the table back and fails
// if it is not what was asked for.
func (c *Conn) Apply(rs Ruleset) (bool, error) {
	if err := rs.validate(); err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	want := rs.rules()
	sets := wantSets(&rs)
	l, err := c.read(want, sets)
	if err != nil {
		return false, err
	}
	if l.exists && len(lineDiff(rs.describe(), l.lines)) == 0 {
		return false, nil
	}

	t := table()
	// Adding before deleting makes the delete succeed when the table is
	// new; the whole batch commits or none of it does.
	c.nl.AddTable(t)
	c.nl.DelTable(t)
	c.nl.AddTable(t)
	chains := map[string]*nftables.Chain{}
	for _, cs := range rs.chains() {
		pol := nftables.ChainPolicyDrop
		if cs.accept {
			pol = nftables.ChainPolicyAccept
		}
		var hook *nftables.ChainHook
		switch cs.hook {
		case "input":
			hook = nftables.ChainHookInput
		case "forward":
			hook = nftables.ChainHookForward
		case "output":
			hook = nftables.ChainHookOutput
		}
		chains[cs.name] = c.nl.AddChain(&nftables.Chain{
			Name: cs.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &pol,
		})
	}
	for _, name := range []string{SetRTP4, SetRTP6} {
		s, ok := sets[name]
		if !ok {
			continue
		}
		var els []nftables.SetElement
		for _, p := range l.pins {
			if rs.RTP.Contains(p.Local) && (name == SetRTP6) == p.Peer.Addr().Is6() {
				els = append(els, nftables.SetElement{Key: pinholeKey(p)})
			}
		}
		if err := c.nl.AddSet(s, els); err != nil {
			return false, fmt.Errorf("add set %s: %w", name, err)
		}
	}
	for _, r := range want {
		es, err := r.exprs(sets)
		if err != nil {
			return false, err
		}
		c.nl.AddRule(&nftables.Rule{
			Table: t, Chain: chains[r.chain], Exprs: es,
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.text),
		})
	}
	if err := c.nl.Flush(); err != nil {
		return false, fmt.Errorf("apply table inet %s: %w", TableName, err)
	}

	d, err := c.diff(&rs)
	if err != nil {
		return true, fmt.Errorf("read back table inet %s: %w", TableName, err)
	}
	if len(d) > 0 {
		return true, fmt.Errorf("table inet %s differs after apply: %v", TableName, d)
	}
	return true, nil
}

// Remove deletes the hardphone table, if there is one.
func (c *Conn) Remove() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, err := c.tableExists()
	if err != nil || !ok {
		return err
	}
	c.nl.DelTable(table())
	if err := c.nl.Flush(); err != nil {
		return fmt.Errorf("delete table inet %s: %w", TableName, err)
	}
	return nil
}

// OtherTables lists the tables that are not ours, as "family name", for
// reports. They are never changed.
func (c *Conn) OtherTables() ([]string, error) {
	ts, err := c.nl.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	fams := map[nftables.TableFamily]string{
		nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip", nftables.TableFamilyIPv6: "ip6",
		nftables.TableFamilyARP: "arp", nftables.TableFamilyBridge: "bridge", nftables.TableFamilyNetdev: "netdev",
	}
	var out []string
	for _, t := range ts {
		if t.Name == TableName && t.Family == nftables.TableFamilyINet {
			continue
		}
		out = append(out, fams[t.Family]+" "+t.Name)
	}
	sort.Strings(out)
	return out, nil
}

func (c *Conn) pinholeSets() (map[string]*nftables.Set, error) {
	ok, err := c.tableExists()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoTable
	}
	sets := map[string]*nftables.Set{}
	for _, name := range []string{SetRTP4, SetRTP6} {
		s, err := c.nl.GetSetByName(table(), name)
		if err != nil {
			return nil, fmt.Errorf("%w: set %s: %v", ErrNoTable, name, err)
		}
		sets[name] = s
	}
	return sets, nil
}

// ruleComment returns the comment TLV of a rule's user data. It parses the
// bytes itself: userdata.Get slices past the end of a malformed TLV, and the
// bytes come from whoever last wrote the rule.
func ruleComment(ud []byte) string {
	for len(ud) >= 2 {
		typ, n := userdata.Type(ud[0]), int(ud[1])
		if len(ud) < 2+n {
			return ""
		}
		if typ == userdata.TypeComment {
			return strings.TrimSuffix(string(ud[2:2+n]), "\x00")
		}
		ud = ud[2+n:]
	}
	return ""
}

func setFor(p Pinhole) string {
	if p.Peer.Addr().Is6() {
		return SetRTP6
	}
	return SetRTP4
}

// AddPinholes adds elements to the pinhole sets in one transaction; adding
// one that is there already is not an error.
func (c *Conn) AddPinholes(ps []Pinhole) error {
	byset, err := groupPinholes(ps)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sets, err := c.pinholeSets()
	if err != nil {
		return err
	}
	for name, els := range byset {
		if err := c.nl.SetAddElements(sets[name], els); err != nil {
			return fmt.Errorf("add pinholes to %s: %w", name, err)
		}
	}
	if err := c.nl.Flush(); err != nil {
		return fmt.Errorf("add pinholes: %w", err)
	}
	return nil
}

// DelPinholes removes elements from the pinhole sets in one transaction;
// ones that are not there are skipped.
func (c *Conn) DelPinholes(ps []Pinhole) error {
	byset, err := groupPinholes(ps)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sets, err := c.pinholeSets()
	if err != nil {
		return err
	}
	for name, els := range byset {
		present, err := c.elements(sets[name])
		if err != nil {
			return err
		}
		var del []nftables.SetElement
		for _, e := range els {
			if p, ok := pinholeFromKey(e.Key); ok && slices.Contains(present, p) {
				del = append(del, e)
			}
		}
		if len(del) == 0 {
			continue
		}
		if err := c.nl.SetDeleteElements(sets[name], del); err != nil {
			return fmt.Errorf("delete pinholes from %s: %w", name, err)
		}
	}
	if err := c.nl.Flush(); err != nil {
		return fmt.Errorf("delete pinholes: %w", err)
	}
	return nil
}

// Pinholes lists the elements of both pinhole sets.
func (c *Conn) Pinholes() ([]Pinhole, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sets, err := c.pinholeSets()
	if err != nil {
		return nil, err
	}
	var out []Pinhole
	for _, name := range []string{SetRTP4, SetRTP6} {
		ps, err := c.elements(sets[name])
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

func (c *Conn) elements(s *nftables.Set) ([]Pinhole, error) {
	els, err := c.nl.GetSetElements(s)
	if err != nil {
		return nil, fmt.Errorf("list set %s: %w", s.Name, err)
	}
	var out []Pinhole
	for _, e := range els {
		if p, ok := pinholeFromKey(e.Key); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func groupPinholes(ps []Pinhole) (map[string][]nftables.SetElement, error) {
	out := map[string][]nftables.SetElement{}
	for _, p := range ps {
		p = p.normalize()
		if err := p.validate(PortRange{1, 65535}); err != nil {
			return nil, err
		}
		out[setFor(p)] = append(out[setFor(p)], nftables.SetElement{Key: pinholeKey(p)})
	}
	return out, nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/internal/cli"
)

// cmdHistory lists the running agent's call history.
func cmdHistory(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("history", "hardphone history --config FILE | --socket PATH [--search TEXT] [--limit N] [--json]", stderr)
	var cf commonFlags
	cf.register(fs)
	socket := fs.String("socket", "", "control socket of a running agent (default: the config's control_socket)")
	search := fs.String("search", "", "only calls whose peer or account contains this")
	limit := fs.Int("limit", 50, "at most this many calls, newest first")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, stdout, 0, 0); err != nil {
		return err
	}
	c, err := controlClient(&cf, *socket)
	if err != nil {
		return err
	}
	es, err := c.History(context.Background(), *search, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(es)
	}
	for _, e := range es {
		outcome := outcomeOf(e)
		fmt.Fprintf(stdout, "%s  %-3s %-8s %s  %s\n", e.Start.Local().Format("2006-01-02 15:04"), e.Direction, e.Account, e.Peer, outcome)
	}
	return nil
}

// cmdContacts lists contacts, or imports a vCard file into them.
func cmdContacts(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("contacts", "hardphone contacts [import FILE.vcf] --config FILE | --socket PATH [--search TEXT] [--json]", stderr)
	var cf commonFlags
	cf.register(fs)
	socket := fs.String("socket", "", "control socket of a running agent (default: the config's control_socket)")
	search := fs.String("search", "", "only contacts whose name or number contains this")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, stdout, 0, 2)
	if err != nil {
		return err
	}
	c, err := controlClient(&cf, *socket)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if len(pos) > 0 {
		if pos[0] != "import" || len(pos) != 2 {
			return usagef("contacts: want no arguments, or import FILE")
		}
		path, err := filepath.Abs(pos[1])
		if err != nil {
			return err
		}
		n, err := c.ImportContacts(ctx, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported %d contacts\n", n)
		return nil
	}
	cs, err := c.Contacts(ctx, *search)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(cs)
	}
	for _, ct := range cs {
		fmt.Fprintf(stdout, "%-30s %s\n", ct.Name, strings.Join(ct.Numbers, ", "))
	}
	return nil
}

// outcomeOf is how a history entry ended, in a word: its length when
// answered, "refused" when the dialling policy stopped it, else "missed".
func outcomeOf(e history.Entry) string {
	switch {
	case e.Answered:
		return e.Duration.Round(time.Second).String()
	case e.Direction == "out" && strings.HasPrefix(e.EndReason, "refused"):
		return "refused"
	}
	return "missed"
}

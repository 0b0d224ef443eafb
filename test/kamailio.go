package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
)

// kamailioReadyTimeout bounds the wait for a started Kamailio to serve.
const kamailioReadyTimeout = 15 * time.Second

// Kamailio is a Kamailio registrar and proxy started by StartKamailio. It
// listens on TLS (and optionally plain UDP and TCP) and is stopped by PID when
// the test ends.
type Kamailio struct {
	proc    *process
	o       kamailioOptions
	runDir  string
	cfgPath string
}

type kamailioOptions struct {
	ip                string
	tlsPort           int
	plainPort         int // 0: no plain listener
	certFile, keyFile string
	caFile            string
	pki               *PKI // nil: StartKamailio makes one
	users             map[string]string
	algorithm         string // "" is MD5 with no algorithm= in challenges
	requireClientCert bool
	deviceUsers       bool
	crlFile           string // "": no CRL
	debug             int
	authDBURL         string // "": digest users from the htable
	rpcPort           int    // 0: no JSON-RPC over HTTP
	minExpires        int    // seconds; 0: the registrar module's default (60)
}

// KamailioOption configures StartKamailio.
type KamailioOption func(*kamailioOptions) error

// KamailioListenIP sets the address of every listener; the default is
// 127.0.0.1.
func KamailioListenIP(ip string) KamailioOption {
	return func(o *kamailioOptions) error {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("listen IP %q is not an IP address", ip)
		}
		o.ip = ip
		return nil
	}
}

// KamailioTLSPort sets the SIP over TLS port; the default is 5061.
func KamailioTLSPort(port int) KamailioOption {
	return func(o *kamailioOptions) error {
		if port <= 0 || port > 65535 {
			return fmt.Errorf("TLS port %d out of range", port)
		}
		o.tlsPort = port
		return nil
	}
}

// KamailioPlainPort adds UDP and TCP listeners on port, for SIPp, which has
// no TLS. Port 0 picks a free one.
func KamailioPlainPort(port int) KamailioOption {
	return func(o *kamailioOptions) error {
		if port < 0 || port > 65535 {
			return fmt.Errorf("plain port %d out of range", port)
		}
		if port == 0 {
			port = -1 // picked once the listen IP is known
		}
		o.plainPort = port
		return nil
	}
}

// KamailioCert sets the server certificate and key files. Without it,
// StartKamailio issues one from the PKI for the listen IP.
func KamailioCert(certFile, keyFile string) KamailioOption {
	return func(o *kamailioOptions) error {
		o.certFile, o.keyFile = certFile, keyFile
		return nil
	}
}

// KamailioCA sets the CA file client certificates are verified against.
// Without it, the PKI's CAFile is used.
func KamailioCA(caFile string) KamailioOption {
	return func(o *kamailioOptions) error {
		o.caFile = caFile
		return nil
	}
}

// KamailioPKI makes StartKamailio take its server certificate and CA from
// p, so clients can get certificates from the same CA.
func KamailioPKI(p *PKI) KamailioOption {
	return func(o *kamailioOptions) error {
		if p == nil {
			return fmt.Errorf("nil PKI")
		}
		o.pki = p
		return nil
	}
}

// KamailioUsers sets the digest credentials, user name to password. The
// map is copied.
func KamailioUsers(users map[string]string) KamailioOption {
	return func(o *kamailioOptions) error {
		for u, p := range users {
			o.users[u] = p
		}
		return nil
	}
}

// KamailioDigestAlgorithm sets the digest algorithm of the whole instance:
// "MD5" (the default, for baresip 1.0) or "SHA-256". Kamailio 5.6 cannot offer
// both in two challenges; run a second instance to test both.
func KamailioDigestAlgorithm(alg string) KamailioOption {
	return func(o *kamailioOptions) error {
		switch alg {
		case "MD5":
			o.algorithm = ""
		case "SHA-256":
			o.algorithm = alg
		default:
			return fmt.Errorf("digest algorithm %q, want MD5 or SHA-256", alg)
		}
		return nil
	}
}

// KamailioRequireClientCert sets whether TLS clients must present a
// certificate from the CA whose CN equals their digest user (403 otherwise).
// The default is true.
func KamailioRequireClientCert(require bool) KamailioOption {
	return func(o *kamailioOptions) error {
		o.requireClientCert = require
		return nil
	}
}

// KamailioDeviceUsers binds client certificates to digest users through
// the "devices" htable (certificate CN, a fleet device ID, to SIP user)
// instead of CN = user: the registrar's subscriber provisioning for phones
// whose certificates the fleet issues. SetDeviceUser fills it at run time.
func KamailioDeviceUsers() KamailioOption {
	return func(o *kamailioOptions) error {
		o.deviceUsers = true
		return nil
	}
}

// SetDeviceUser binds the fleet device deviceID to the SIP user.
func (k *Kamailio) SetDeviceUser(t testing.TB, deviceID, user string) {
	t.Helper()
	if !k.o.deviceUsers {
		t.Fatalf("Kamailio.SetDeviceUser: started without KamailioDeviceUsers")
	}
	k.Kamcmd(t, "htable.sets", "devices", deviceID, user)
}

// KamailioCRL makes the TLS server check client certificates against the
// CRL in crlFile (PEM), as a registrar fed by the fleet's /v1/crl does: a
// revoked certificate fails the handshake. `kamcmd tls.reload` (Kamcmd)
// picks up a new file.
func KamailioCRL(crlFile string) KamailioOption {
	return func(o *kamailioOptions) error {
		o.crlFile = crlFile
		return nil
	}
}

// KamailioPostgresAuth makes Kamailio authenticate from the subscriber
// table of a PostgreSQL database (auth_db over db_postgres, with stored
// hashes: the ha1 column, ha1b for user@domain digest users, in the
// instance's digest algorithm; use_domain on), as a registrar that hpfleet
// writes to does. A password change keeps the previous one valid while it
// is in the table subscriber_prev (same columns): a digest response that
// does not match subscriber is checked against it. dbURL is a postgres://
// URL (Postgres.URL). KamailioAuthSchema creates the tables.
func KamailioPostgresAuth(dbURL string) KamailioOption {
	return func(o *kamailioOptions) error {
		if !strings.HasPrefix(dbURL, "postgres://") || strings.ContainsAny(dbURL, "\"\\\n") {
			return fmt.Errorf("auth database URL %q: want postgres://USER:PASSWORD@HOST:PORT/DB", dbURL)
		}
		o.authDBURL = dbURL
		return nil
	}
}

// KamailioRPC serves Kamailio's JSON-RPC (jsonrpcs over xhttp) on a TCP
// port of the listen IP (RPCURL): what hpfleet calls to look up a
// registration and send it a NOTIFY.
func KamailioRPC() KamailioOption {
	return func(o *kamailioOptions) error {
		o.rpcPort = -1
		return nil
	}
}

// KamailioMinExpires sets the shortest registration lifetime the
// registrar grants, in seconds (the registrar module's default is 60): a
// test that needs many re-REGISTERs lets its phones ask for 10 s.
func KamailioMinExpires(seconds int) KamailioOption {
	return func(o *kamailioOptions) error {
		if seconds < 1 || seconds > 3600 {
			return fmt.Errorf("min expires %d, want 1..3600", seconds)
		}
		o.minExpires = seconds
		return nil
	}
}

// KamailioDebug sets Kamailio's debug level (default 2; 3 logs routing
// decisions).
func KamailioDebug(level int) KamailioOption {
	return func(o *kamailioOptions) error {
		if level < -5 || level > 5 {
			return fmt.Errorf("debug level %d, want -5..5", level)
		}
		o.debug = level
		return nil
	}
}

// StartKamailio writes a kamailio.cfg and tls.cfg into a temporary run dir,
// checks them with kamailio -c, starts Kamailio in the foreground and waits
// until its TLS port accepts connections and kamcmd answers.
func StartKamailio(t testing.TB, opts ...KamailioOption) *Kamailio {
	t.Helper()
	requireNetns(t)
	bin := requireBinary(t, "kamailio")
	requireBinary(t, "kamcmd")
	o := kamailioOptions{
		ip:                "127.0.0.1",
		tlsPort:           5061,
		users:             map[string]string{},
		requireClientCert: true,
		debug:             2,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatalf("StartKamailio: %v", err)
		}
	}
	runDir := t.TempDir()
	if o.pki == nil {
		o.pki = NewPKI(t, filepath.Join(runDir, "pki"))
	}
	if o.certFile == "" {
		o.certFile, o.keyFile = o.pki.Server(o.ip, net.ParseIP(o.ip))
	}
	if o.caFile == "" {
		o.caFile = o.pki.CAFile
	}
	if o.plainPort < 0 {
		o.plainPort = freePort(t, o.ip, 1)
	}
	if o.rpcPort < 0 {
		o.rpcPort = freePort(t, o.ip, 1)
	}
	if o.authDBURL != "" {
		requireKamailioModule(t, "db_postgres.so", "kamailio-postgres-modules")
	}
	k := &Kamailio{o: o, runDir: runDir, cfgPath: filepath.Join(runDir, "kamailio.cfg")}
	data := kamailioCfgData{
		Debug:             o.debug,
		IP:                o.ip,
		TLSPort:           o.tlsPort,
		PlainPort:         o.plainPort,
		TLSCfg:            filepath.Join(runDir, "tls.cfg"),
		CtlSocket:         k.ctlSocket(),
		RunDir:            runDir,
		SIPDumpPrefix:     sipDumpPrefix,
		Algorithm:         o.algorithm,
		Users:             sortedUsers(o.users),
		RequireClientCert: o.requireClientCert,
		DeviceUsers:       o.deviceUsers,
		CertFile:          o.certFile,
		KeyFile:           o.keyFile,
		CAFile:            o.caFile,
		CRLFile:           o.crlFile,
		AuthDBURL:         o.authDBURL,
		RPCPort:           o.rpcPort,
		MinExpires:        o.minExpires,
	}
	if err := data.validate(); err != nil {
		t.Fatalf("StartKamailio: %v", err)
	}
	writeTemplate(t, k.cfgPath, kamailioCfg, &data)
	writeTemplate(t, data.TLSCfg, kamailioTLSCfg, &data)

	check := exec.Command(bin, "-c", "-f", k.cfgPath)
	check.Dir = runDir
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("StartKamailio: kamailio -c -f %s: %v\n%s\n--- config ---\n%s", k.cfgPath, err, out, readFile(k.cfgPath))
	}

	k.proc = startProcess(t, k.LogPath(), runDir, bin,
		"-f", k.cfgPath, "-DD", "-E",
		"-w", runDir, "-Y", runDir, "-P", filepath.Join(runDir, "kamailio.pid"),
		"-m", "64", "-M", "8",
		// OpenSSL's atexit handlers touch freed shared memory at shutdown.
		"--atexit=no")
	err := k.proc.waitFor(kamailioReadyTimeout, func() error {
		c, err := net.DialTimeout("tcp", k.Addr(), time.Second)
		if err != nil {
			return err
		}
		c.Close()
		if k.o.rpcPort != 0 {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(k.o.ip, strconv.Itoa(k.o.rpcPort)), time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		_, err = k.kamcmd("core.version")
		return err
	})
	if err != nil {
		t.Fatalf("StartKamailio: %v\n--- log ---\n%s", err, k.proc.logTail(8000))
	}
	t.Logf("kamailio pid %d on tls:%s (run dir %s)", k.PID(), k.Addr(), runDir)
	return k
}

// RPCURL is the URL of Kamailio's JSON-RPC over HTTP (KamailioRPC), ""
// without it.
func (k *Kamailio) RPCURL() string {
	if k.o.rpcPort == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(k.o.ip, strconv.Itoa(k.o.rpcPort)) + "/RPC"
}

// kamailioModuleDirs are where Debian installs Kamailio's modules.
var kamailioModuleDirs = []string{"/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/aarch64-linux-gnu/kamailio/modules",
	"/usr/lib/kamailio/modules"}

// requireKamailioModule skips (fails under CI) when a module is not
// installed.
func requireKamailioModule(t testing.TB, module, pkg string) {
	t.Helper()
	for _, d := range kamailioModuleDirs {
		if _, err := os.Stat(filepath.Join(d, module)); err == nil {
			return
		}
	}
	missing(t, "Kamailio module %s not installed (Debian package %s)", module, pkg)
}

// kamailioSchemaFiles are Kamailio's own PostgreSQL schema for the version
// table and auth_db's subscriber table.
var kamailioSchemaFiles = []string{"/usr/share/kamailio/postgres/standard-create.sql", "/usr/share/kamailio/postgres/auth_db-create.sql"}

// KamailioAuthSchema creates Kamailio's version and subscriber tables in
// the database of dsn, from the SQL files Kamailio ships, as kamdbctl
// would.
func KamailioAuthSchema(t testing.TB, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("KamailioAuthSchema: connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, f := range kamailioSchemaFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			missing(t, "Kamailio schema %s: %v (Debian package kamailio)", f, err)
		}
		if _, err := conn.Exec(ctx, string(b), pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("KamailioAuthSchema: %s: %v", f, err)
		}
	}
}

// Addr is the host:port of the TLS listener.
func (k *Kamailio) Addr() string { return net.JoinHostPort(k.o.ip, strconv.Itoa(k.o.tlsPort)) }

// PlainAddr is the host:port of the UDP and TCP listeners, or "" when there
// are none.
func (k *Kamailio) PlainAddr() string {
	if k.o.plainPort == 0 {
		return ""
	}
	return net.JoinHostPort(k.o.ip, strconv.Itoa(k.o.plainPort))
}

// IP is the listen address.
func (k *Kamailio) IP() string { return k.o.ip }

// PID is the process ID of the Kamailio main process.
func (k *Kamailio) PID() int { return k.proc.pid() }

// LogPath is the file holding Kamailio's stderr.
func (k *Kamailio) LogPath() string { return filepath.Join(k.runDir, "kamailio.log") }

// RunDir holds the config, the control socket, the log and the SIP dump.
func (k *Kamailio) RunDir() string { return k.runDir }

// PKI is the PKI whose CA Kamailio trusts for client certificates.
func (k *Kamailio) PKI() *PKI { return k.o.pki }

// Password returns the configured digest password of user, "" if none.
func (k *Kamailio) Password(user string) string { return k.o.users[user] }

// Registration is one contact binding in Kamailio's location table.
type Registration struct {
	// AoR is the address of record; with usrloc's default use_domain=0 it
	// is the user part only.
	AoR string
	// Contact is the Contact URI the UA registered.
	Contact string
	// Received is the source the REGISTER came from, as a SIP URI; empty
	// when it equals the Contact.
	Received string
	// Socket is Kamailio's listener, e.g. "tls:127.0.0.1:5061".
	Socket string
	// Expires is the remaining lifetime in seconds.
	Expires int
}

// Registrations lists the current bindings from kamcmd ul.dump.
func (k *Kamailio) Registrations(t testing.TB) []Registration {
	t.Helper()
	out, err := k.kamcmd("ul.dump")
	if err != nil {
		t.Fatalf("Kamailio.Registrations: %v", err)
	}
	return parseULDump(out)
}

// WaitRegistered polls ul.dump until user has a binding and returns it.
func (k *Kamailio) WaitRegistered(t testing.TB, user string, timeout time.Duration) Registration {
	t.Helper()
	var found Registration
	err := k.proc.waitFor(timeout, func() error {
		out, err := k.kamcmd("ul.dump")
		if err != nil {
			return err
		}
		for _, r := range parseULDump(out) {
			if r.AoR == user || strings.HasPrefix(r.AoR, user+"@") {
				found = r
				return nil
			}
		}
		return fmt.Errorf("%q not in location table", user)
	})
	if err != nil {
		t.Fatalf("Kamailio.WaitRegistered(%q): %v\n--- sipdump ---\n%s", user, err, k.SIPDump())
	}
	return found
}

// WaitLog polls Kamailio's log until it contains substr.
func (k *Kamailio) WaitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	err := k.proc.waitFor(timeout, func() error {
		b, err := os.ReadFile(k.LogPath())
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte(substr)) {
			return fmt.Errorf("log has no %q", substr)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Kamailio.WaitLog: %v\n--- log ---\n%s", err, k.proc.logTail(4000))
	}
}

// Kamcmd runs a kamcmd RPC command against this instance and returns its
// output.
func (k *Kamailio) Kamcmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := k.kamcmd(args...)
	if err != nil {
		t.Fatalf("Kamailio.Kamcmd(%s): %v", strings.Join(args, " "), err)
	}
	return out
}

func (k *Kamailio) kamcmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kamcmd", append([]string{"-s", "unix:" + k.ctlSocket()}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kamcmd %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (k *Kamailio) ctlSocket() string { return filepath.Join(k.runDir, "kamailio_ctl") }

// sipDumpPrefix starts the names of the files sipdump writes in the run dir.
const sipDumpPrefix = "sipdump-"

// SIPDump returns every SIP message Kamailio received or sent, in clear
// text, as written by the sipdump module: the way to read SIP inside TLS.
func (k *Kamailio) SIPDump() string {
	files, err := filepath.Glob(filepath.Join(k.runDir, sipDumpPrefix+"*.data"))
	if err != nil || len(files) == 0 {
		return "(no sipdump files)"
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		b.WriteString(readFile(f))
	}
	return b.String()
}

// parseULDump reads the AoR and contact fields of kamcmd ul.dump output,
// which nests "Key: value" lines in braces.
func parseULDump(out string) []Registration {
	var regs []Registration
	var aor string
	cur := -1
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "AoR":
			aor, cur = val, -1
		case "Address":
			regs = append(regs, Registration{AoR: aor, Contact: val})
			cur = len(regs) - 1
		case "Received":
			if cur >= 0 && val != "[not set]" {
				regs[cur].Received = val
			}
		case "Socket":
			if cur >= 0 {
				regs[cur].Socket = val
			}
		case "Expires":
			if cur >= 0 {
				// "permanent" or "deleted" leave 0.
				regs[cur].Expires, _ = strconv.Atoi(val)
			}
		}
	}
	return regs
}

func writeTemplate(t testing.TB, path string, tmpl *template.Template, data any) {
	t.Helper()
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatalf("render %s: %v", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return string(b)
}

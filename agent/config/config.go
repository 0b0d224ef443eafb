package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hardphone/hardphone/agent/dialplan"
	"github.com/hardphone/hardphone/crypto/policy"
)

// Config is a validated agent configuration. Treat it as immutable: Load
// returns a fresh value and nothing in the agent writes to it.
type Config struct {
	// Path is the file the config came from; relative file names in it are
	// resolved against its directory.
	Path     string
	StateDir string
	// ControlSocket is the unix socket `hardphone status` talks to; empty
	// means no control socket.
	ControlSocket string
	TLS           TLS
	Media         Media
	Accounts      []Account
	// Listen lists extra plain-SIP listeners ("udp:127.0.0.1:5060"). Empty by
	// default: calls arrive over each registration's own TLS flow.
	Listen []Listener
	// ListenPeer is the one source (IP and port) plain listeners take
	// requests from; the zero value means the first account's registrar
	// address.
	ListenPeer netip.AddrPort
	// MaxCalls bounds concurrent calls across all accounts (default 8).
	MaxCalls int
	// CredentialStore is where secrets and the identity key live:
	// "/dev/tpmrm0", "swtpm:unix:PATH", "swtpm:tcp:HOST:PORT", or
	// "software:KEKFILE" (a desktop without a TPM; reported as weaker).
	// "" means no store: passwords from files, the TLS key from a file.
	CredentialStore string
	// LockdownPolicy is the lockdown policy file the agent applies at start
	// and checks every LockdownCheck; "" runs without one (a desktop).
	LockdownPolicy string
	LockdownCheck  time.Duration
	// IdleCodeRelease is how long a running agent waits, quiet and with
	// no call up, before it gives its executable's code pages back to the
	// kernel (package resident); 0: never.
	IdleCodeRelease time.Duration
	// Board names the hardware (board.Lookup): its slots, boot environment
	// and TPM. "" on a desktop.
	Board string
	// ControlUIDs may use the control socket besides root and the agent's
	// own uid.
	ControlUIDs []uint32
	// Update configures the A/B updater; its zero value (no Keyring) means
	// the agent runs without one (a desktop).
	Update Update
	// Events configures where security events go besides the journal.
	Events Events
	// Audio is the sound device calls use.
	Audio Audio
	// Provision is the fleet the phone enrols with; its zero value (no
	// Server) means none.
	Provision Provision
}

// Provision is the [provision] table: the fleet server (hpfleet) the phone
// enrols with, renews its certificate from and checks in to. Its CA and
// name are the image's, never learned from the network.
type Provision struct {
	// Server is "https://NAME[:PORT]".
	Server string
	// ServerName is the name the server's certificate must carry (default:
	// Server's host).
	ServerName string
	// ServerCA holds the fleet server's CA (PEM); required with Server.
	ServerCA string
	// DeviceCA is the fleet's device CA (PEM): an issued certificate that
	// does not chain to it is refused; required with Server.
	DeviceCA string
	// HintFile, when set, is a file the DHCP client writes with the
	// fleet address from option 43/66 ("HOST:PORT"): only where to dial,
	// the server must still prove ServerName.
	HintFile string
	// CheckInInterval is how often the phone checks in (jittered; the
	// server may ask for another interval).
	CheckInInterval time.Duration
	// Model is the phone's model as the vendor's manifest names it (the
	// fleet refuses a report whose model is not the device record's);
	// "" means the board's name ("desktop" without a board).
	Model string
	// ImageRoot and DirectorRoot are the pinned first root metadata
	// (1.root.json) of the vendor's image repository and of the fleet's
	// director; ImageRepo is where the image repository is served (any
	// HTTP(S) server: the transport is untrusted, TUF verifies). The three
	// go together; unset means the phone takes no configuration or
	// firmware from the fleet.
	ImageRoot, DirectorRoot, ImageRepo string
	// Director is the base URL of the director repositories, the
	// device's being Director + "<device-id>/" (mutual TLS with the
	// device certificate, server_ca and server_name as for Server).
	// Default: Server + "/director/".
	Director string
	// ConfigTrial is how long a new fleet configuration document has for
	// every account that was registered before it to register again;
	// past that, the phone reverts to the previous document by itself.
	ConfigTrial time.Duration
	// Maintenance lists the weekly windows (local time) in which firmware
	// the fleet assigns is installed; empty means at any time.
	Maintenance []dialplan.Window
}

// Uptane reports whether the phone follows the fleet's repositories
// (configuration documents and firmware).
func (p Provision) Uptane() bool { return p.DirectorRoot != "" }

// DirectorURL is the base URL of this device's director repository.
func (p Provision) DirectorURL(deviceID string) string {
	return strings.TrimSuffix(p.Director, "/") + "/" + deviceID + "/"
}

// Audio is the [audio] table: the sound device a person talks through.
type Audio struct {
	// Device is "pulse" (PulseAudio or PipeWire's PulseAudio server),
	// "alsa" (a hardware PCM, for phones), or "none" (the default: calls
	// carry silence unless a command plays and records files).
	Device string
	// Input and Output name the capture and playback devices ("" = the
	// server's default; "hw:C,D" for ALSA).
	Input, Output string
	// Server is the PulseAudio server address ("" = $PULSE_SERVER, then the
	// user's runtime directory).
	Server string
}

// Check validates an [audio] table, from the file or from the command line
// (hardphone run --audio/--mic/--speaker), and returns it with its
// defaults filled in: Device "" is "none". Errors name the config key.
func (a Audio) Check() (Audio, error) {
	switch a.Device {
	case "":
		a.Device = "none"
	case "none", "pulse", "alsa":
	default:
		return Audio{}, keyErr("audio.device", "%q: want pulse, alsa or none", a.Device)
	}
	if a.Device == "alsa" && (a.Input == "" || a.Output == "") {
		return Audio{}, keyErr("audio.input", "ALSA needs input and output devices (hw:CARD,DEVICE)")
	}
	return a, nil
}

// Events is the [events] table. The journal in the state file is always
// kept when the phone has a state directory and a signing identity; the
// syslog collector is optional.
type Events struct {
	// Syslog is the RFC 5425 collector (host:port; 6514 is the standard
	// port); "" exports nowhere.
	Syslog string
	// SyslogCA holds the collector's trust anchors (PEM); required with
	// Syslog.
	SyslogCA string
	// SyslogServerName is the name the collector's certificate must carry
	// (default: Syslog's host).
	SyslogServerName string
	// Hostname is the HOSTNAME of every message (default: the system's).
	Hostname string
	// Fleet ships the journal to the fleet server the phone enrolled
	// with ([provision]), over its mutual-TLS channel, with its own
	// cursor (default: on whenever [provision] names a server).
	Fleet bool
	// FleetCalls adds the calls the history gained (start, direction,
	// duration, answered, the other party's number) to what goes to the
	// fleet, for its call rules (toll fraud). Off by default: the fleet
	// then learns whom the phone called only if this is set.
	FleetCalls bool
}

// Update is the [update] table.
type Update struct {
	// Layout is a test rig's slot and boot-environment layout file
	// (board.ReadLayout), for a machine with no board of ours; a phone's
	// layout comes from its Board.
	Layout string
	// Keyring holds the trusted bundle-signing CAs (PEM). Set means the
	// agent runs the updater.
	Keyring string
	// Purpose is the signer certificate rule: "codesign" (default) or
	// "smimesign" (rauc's default, for bundles from existing pipelines).
	Purpose string
	// MarkGoodAfter is how long every account must stay registered before
	// the agent marks the booted slot good.
	MarkGoodAfter time.Duration
}

// TLS holds the trust anchors and the client identity for mutual TLS. With
// a credential store and no CertFile, the identity is the store's (its key
// in the TPM).
type TLS struct {
	CAFile   string
	CertFile string
	// KeyFile is a PEM private key file (PKCS#8, EC or RSA). The TPM identity
	// replaces it in a later issue; the agent only ever sees a crypto.Signer.
	KeyFile string
}

// Media holds the RTP settings shared by all accounts.
type Media struct {
	LocalIP          netip.Addr
	PortMin, PortMax uint16
	// InactivityTimeout ends a call (BYE with a Reason) when no
	// authenticated SRTP or SRTCP packet arrived for this long (default
	// 60s; a held call still exchanges SRTCP).
	InactivityTimeout time.Duration
	// AllowPeers lists networks media may be sent to although they are
	// loopback, link-local or the phone's own (a lab or a test on one
	// host); empty by default, so those are refused. A prefix lifts the
	// refusal only for addresses of a class it is no wider than (see
	// agent/media DestinationPolicy).
	AllowPeers []netip.Prefix
}

// Listener is one plain SIP listener.
type Listener struct {
	Network string // "udp" or "tcp"
	Addr    netip.AddrPort
}

// MediaSecurity is how SRTP keys are agreed.
type MediaSecurity string

// Media security modes. DTLS-SRTP is the default: its keys are agreed on
// the media path end to end, so no proxy on the signalling path ever sees
// them; SDES (keys in the SDP, readable by every proxy that relays it) is
// an explicit choice for a PBX that cannot do DTLS-SRTP.
const (
	MediaSDES MediaSecurity = "sdes"
	MediaDTLS MediaSecurity = "dtls"
)

// AnswerMode says what the agent does with an inbound call.
type AnswerMode string

// Answer modes.
const (
	AnswerAuto   AnswerMode = "auto"
	AnswerManual AnswerMode = "manual"
)

// CallWaiting says what happens to a call that arrives while another is up.
type CallWaiting string

// Call waiting modes.
const (
	// CallWaitingRing: the new call rings and is answered by hand whatever
	// answer says; answering it puts the other calls on hold (the default:
	// an auto-answering phone never joins a second conversation unasked).
	CallWaitingRing CallWaiting = "ring"
	// CallWaitingBusy: the new call is refused 486 Busy Here.
	CallWaitingBusy CallWaiting = "busy"
	// CallWaitingParallel: the new call is treated like any other (with
	// answer = "auto" it is answered at once): for automation and test rigs
	// that take concurrent calls.
	CallWaitingParallel CallWaiting = "parallel"
)

// Account is one SIP account.
type Account struct {
	Name     string
	User     string
	AuthUser string
	Domain   string
	// Registrar is host:port of the TLS registrar, also the outbound proxy.
	Registrar string
	// ServerName is the name (or IP) the registrar's certificate must carry.
	ServerName string
	// PasswordFile holds the digest password; the file must not be readable
	// by group or others. The password itself is never in the config.
	PasswordFile string
	// PasswordCred names the digest password in the credential store
	// ("sip/alice"). Exactly one of PasswordFile and PasswordCred is set.
	PasswordCred string
	// PasswordSealed is the password the fleet sealed to this phone's TPM
	// for PasswordCred ("hps1.…"), set only from a fleet document
	// (ParseWithDocument); the agent opens it into the credential store
	// before it runs the document.
	PasswordSealed string
	DigestMin      policy.Digest
	MediaSecurity  MediaSecurity
	Answer         AnswerMode
	// Expires is the registration lifetime we ask for; the registrar's grant wins.
	Expires time.Duration
	// Keepalive is the RFC 5626 CRLF ping interval on the TLS flow.
	Keepalive time.Duration
	// RetryBase and RetryMax bound the RFC 5626 §4.5 backoff.
	RetryBase, RetryMax time.Duration
	// AllowRefer lets the peer transfer our calls (an in-dialog REFER, RFC
	// 3515) and lets an INVITE with Replaces (RFC 3891) take over one of
	// them. Off by default.
	AllowRefer bool
	// CallWaiting is what a call that arrives during another gets (default
	// CallWaitingRing).
	CallWaiting CallWaiting
	// AnswerDelay is how long an auto-answer rings first.
	AnswerDelay time.Duration
	// Dialing is the outbound dialling policy (the toll-fraud guard).
	Dialing dialplan.Policy
	// MaxCalls bounds this account's concurrent calls (default 4, at most
	// the global max_calls).
	MaxCalls int
	// Realm is the only digest realm the account answers challenges for;
	// "" pins the realm of the registrar's REGISTER challenge that led to
	// a 200.
	Realm string
}

// Password reads the account's digest password. It is read when needed, not
// kept in Config, so a Config can be logged or printed safely.
func (a Account) Password() (string, error) {
	st, err := os.Stat(a.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("account %s password file: %w", a.Name, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("account %s password file %s is readable by others (mode %v, want 0600)",
			a.Name, a.PasswordFile, st.Mode().Perm())
	}
	b, err := os.ReadFile(a.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("account %s password file: %w", a.Name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Account returns the account with that name, or the first when name is "".
func (c *Config) Account(name string) (Account, error) {
	if name == "" && len(c.Accounts) > 0 {
		return c.Accounts[0], nil
	}
	for _, a := range c.Accounts {
		if a.Name == name {
			return a, nil
		}
	}
	return Account{}, fmt.Errorf("no account named %q", name)
}

// file is the TOML shape. Pointers mark keys that may be absent.
type file struct {
	Board         string     `toml:"board"`
	StateDir      string     `toml:"state_dir"`
	ControlSocket *string    `toml:"control_socket"`
	ControlUIDs   []int64    `toml:"control_uids"`
	Listen        []string   `toml:"listen"`
	ListenPeer    string     `toml:"listen_peer"`
	MaxCalls      *int       `toml:"max_calls"`
	Lockdown      string     `toml:"lockdown_policy"`
	CredStore     string     `toml:"credential_store"`
	Update        updateFile `toml:"update"`
	Events        eventsFile `toml:"events"`
	Audio         audioFile  `toml:"audio"`
	Provision     provFile   `toml:"provision"`
	LockdownCheck *string    `toml:"lockdown_check_interval"`
	IdleRelease   *string    `toml:"idle_code_release"`
	TLS           tlsFile    `toml:"tls"`
	Media         mediaFile  `toml:"media"`
	Accounts      []acctFile `toml:"account"`
}

type updateFile struct {
	Layout        string  `toml:"layout"`
	Keyring       string  `toml:"keyring"`
	Purpose       string  `toml:"check_purpose"`
	MarkGoodAfter *string `toml:"mark_good_after"`
}

type provFile struct {
	Server          string   `toml:"server"`
	ServerName      string   `toml:"server_name"`
	ServerCA        string   `toml:"server_ca"`
	DeviceCA        string   `toml:"device_ca"`
	HintFile        string   `toml:"hint_file"`
	CheckInInterval *string  `toml:"checkin_interval"`
	Model           string   `toml:"model"`
	ImageRoot       string   `toml:"image_root"`
	DirectorRoot    string   `toml:"director_root"`
	ImageRepo       string   `toml:"image_repo"`
	Director        string   `toml:"director_url"`
	ConfigTrial     *string  `toml:"config_trial"`
	Maintenance     []string `toml:"maintenance"`
}

type audioFile struct {
	Device string `toml:"device"`
	Input  string `toml:"input"`
	Output string `toml:"output"`
	Server string `toml:"server"`
}

type eventsFile struct {
	Syslog           string `toml:"syslog"`
	SyslogCA         string `toml:"syslog_ca"`
	SyslogServerName string `toml:"syslog_server_name"`
	Hostname         string `toml:"hostname"`
	Fleet            *bool  `toml:"fleet"`
	FleetCalls       bool   `toml:"fleet_calls"`
}

type tlsFile struct {
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

type mediaFile struct {
	LocalIP           string   `toml:"local_ip"`
	PortMin           *int     `toml:"rtp_port_min"`
	PortMax           *int     `toml:"rtp_port_max"`
	InactivityTimeout *string  `toml:"inactivity_timeout"`
	AllowPeers        []string `toml:"allow_peers"`
}

type acctFile struct {
	Name          string       `toml:"name"`
	User          string       `toml:"user"`
	AuthUser      string       `toml:"auth_user"`
	Domain        string       `toml:"domain"`
	Registrar     string       `toml:"registrar"`
	ServerName    string       `toml:"server_name"`
	PasswordFile  string       `toml:"password_file"`
	PasswordCred  string       `toml:"password_cred"`
	DigestMin     *string      `toml:"digest_min"`
	MediaSecurity *string      `toml:"media_security"`
	Answer        *string      `toml:"answer"`
	Expires       *string      `toml:"expires"`
	Keepalive     *string      `toml:"keepalive"`
	RetryBase     *string      `toml:"retry_base"`
	RetryMax      *string      `toml:"retry_max"`
	AllowRefer    bool         `toml:"allow_refer"`
	CallWaiting   *string      `toml:"call_waiting"`
	AnswerDelay   *string      `toml:"answer_delay"`
	Transport     *string      `toml:"transport"`
	Dialing       *dialingFile `toml:"dialing"`
	MaxCalls      *int         `toml:"max_calls"`
	Realm         *string      `toml:"realm"`
}

type dialingFile struct {
	Allow           []string  `toml:"allow"`
	International   *bool     `toml:"international"`
	HomeCountry     string    `toml:"home_country"`
	PremiumPrefixes *[]string `toml:"premium_prefixes"`
	MaxPerHour      *int      `toml:"max_per_hour"`
	MaxPerDay       *int      `toml:"max_per_day"`
	Hours           []string  `toml:"hours"`
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// Parse validates TOML config bytes; relative paths resolve against dir.
func Parse(b []byte, dir string) (*Config, error) {
	var f file
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		// An unknown key is most often a typo of a security setting: refuse it.
		return nil, keyErr(und[0].String(), "unknown key")
	}
	return f.validate(dir)
}

func (f *file) validate(dir string) (*Config, error) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c := &Config{StateDir: abs(f.StateDir), LockdownPolicy: abs(f.Lockdown), LockdownCheck: 60 * time.Second}
	if f.LockdownCheck != nil {
		d, err := time.ParseDuration(*f.LockdownCheck)
		if err != nil || d < time.Second {
			return nil, keyErr("lockdown_check_interval", "%q: want a duration of at least 1s", *f.LockdownCheck)
		}
		c.LockdownCheck = d
	}
	c.IdleCodeRelease = 10 * time.Second
	if f.IdleRelease != nil {
		switch d, err := time.ParseDuration(*f.IdleRelease); {
		case *f.IdleRelease == "off":
			c.IdleCodeRelease = 0
		case err != nil || d < time.Second || d > time.Hour:
			return nil, keyErr("idle_code_release", "%q: want a duration from 1s to 1h, or \"off\"", *f.IdleRelease)
		default:
			c.IdleCodeRelease = d
		}
	}
	if f.ControlSocket != nil {
		c.ControlSocket = abs(*f.ControlSocket)
	}
	for i, u := range f.ControlUIDs {
		if u < 0 || u > 1<<31-2 {
			return nil, keyErr(fmt.Sprintf("control_uids[%d]", i), "%d: want a uid", u)
		}
		c.ControlUIDs = append(c.ControlUIDs, uint32(u))
	}
	if len(c.ControlUIDs) > 0 && c.ControlSocket == "" {
		return nil, keyErr("control_uids", "needs control_socket")
	}
	c.Board = f.Board
	if c.Board != "" && !validBoardName(c.Board) {
		return nil, keyErr("board", "%q: want a board name such as qemu-arm64", c.Board)
	}
	for i, l := range f.Listen {
		ln, err := parseListener(l)
		if err != nil {
			return nil, keyErr(fmt.Sprintf("listen[%d]", i), "%v", err)
		}
		c.Listen = append(c.Listen, ln)
	}
	c.Update = Update{Layout: abs(f.Update.Layout), Keyring: abs(f.Update.Keyring), Purpose: f.Update.Purpose,
		MarkGoodAfter: 30 * time.Second}
	if c.Update.Purpose == "" {
		c.Update.Purpose = "codesign"
	}
	if c.Update.Purpose != "codesign" && c.Update.Purpose != "smimesign" {
		return nil, keyErr("update.check_purpose", "%q: want codesign or smimesign", c.Update.Purpose)
	}
	if f.Update.MarkGoodAfter != nil {
		d, err := time.ParseDuration(*f.Update.MarkGoodAfter)
		if err != nil || d < 0 {
			return nil, keyErr("update.mark_good_after", "%q: want a duration", *f.Update.MarkGoodAfter)
		}
		c.Update.MarkGoodAfter = d
	}
	if c.Update.Layout != "" && c.Update.Keyring == "" {
		return nil, keyErr("update.keyring", "an [update] layout needs keyring")
	}
	if c.Update.Keyring != "" && c.StateDir == "" {
		return nil, keyErr("state_dir", "required with [update] (the updater keeps its records in the state file)")
	}
	if c.Update.Layout != "" && c.Board != "" {
		return nil, keyErr("update.layout", "a rig's layout file and board = %q exclude each other: the board says where its slots are", c.Board)
	}
	c.Events = Events{Syslog: f.Events.Syslog, SyslogCA: abs(f.Events.SyslogCA), SyslogServerName: f.Events.SyslogServerName,
		Hostname: f.Events.Hostname}
	if c.Events.Syslog != "" {
		host, port, err := net.SplitHostPort(c.Events.Syslog)
		if err != nil || host == "" || port == "" {
			return nil, keyErr("events.syslog", "%q: want host:port", c.Events.Syslog)
		}
		if c.Events.SyslogCA == "" {
			return nil, keyErr("events.syslog_ca", "required with events.syslog: the collector's certificate is always verified")
		}
		if c.Events.SyslogServerName == "" {
			c.Events.SyslogServerName = host
		}
		if c.StateDir == "" {
			return nil, keyErr("state_dir", "required with events.syslog (the journal is the export queue)")
		}
	}
	if len(c.Events.Hostname) > 255 {
		return nil, keyErr("events.hostname", "longer than 255 bytes")
	}
	prov, err := f.Provision.validate(c.StateDir, abs)
	if err != nil {
		return nil, err
	}
	c.Provision = prov
	c.Events.Fleet = prov.Server != ""
	if f.Events.Fleet != nil {
		c.Events.Fleet = *f.Events.Fleet
	}
	c.Events.FleetCalls = f.Events.FleetCalls
	if c.Events.Fleet && prov.Server == "" {
		return nil, keyErr("events.fleet", "needs a fleet to ship to: [provision] server")
	}
	if c.Events.FleetCalls && !c.Events.Fleet {
		return nil, keyErr("events.fleet_calls", "calls go with the journal to the fleet: needs events.fleet (and [provision] server)")
	}
	if c.Audio, err = (Audio{Device: f.Audio.Device, Input: f.Audio.Input, Output: f.Audio.Output, Server: f.Audio.Server}).Check(); err != nil {
		return nil, err
	}
	c.CredentialStore = f.CredStore
	if c.CredentialStore != "" && c.StateDir == "" {
		return nil, keyErr("state_dir", "required with credential_store (the store lives in the state file)")
	}
	if strings.HasPrefix(c.CredentialStore, "software:") {
		c.CredentialStore = "software:" + abs(strings.TrimPrefix(c.CredentialStore, "software:"))
	}
	c.TLS = TLS{CAFile: abs(f.TLS.CAFile), CertFile: abs(f.TLS.CertFile), KeyFile: abs(f.TLS.KeyFile)}
	if c.TLS.CAFile == "" {
		return nil, keyErr("tls.ca_file", "required: the registrar's certificate is always verified")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return nil, keyErr("tls.key_file", "cert_file and key_file go together")
	}
	if c.Provision.Server != "" {
		if c.CredentialStore == "" {
			return nil, keyErr("credential_store", "required with [provision]: enrolment proves the identity key lives in the TPM")
		}
		if c.TLS.CertFile != "" {
			return nil, keyErr("tls.cert_file", "excludes [provision]: the fleet issues the phone's certificate")
		}
	}

	c.Media.LocalIP = netip.MustParseAddr("127.0.0.1")
	if f.Media.LocalIP != "" {
		ip, err := netip.ParseAddr(f.Media.LocalIP)
		if err != nil {
			return nil, keyErr("media.local_ip", "%v", err)
		}
		c.Media.LocalIP = ip
	}
	c.Media.PortMin, c.Media.PortMax = 16384, 16639
	if f.Media.PortMin != nil || f.Media.PortMax != nil {
		if f.Media.PortMin == nil || f.Media.PortMax == nil {
			return nil, keyErr("media.rtp_port_min", "rtp_port_min and rtp_port_max go together")
		}
		lo, hi := *f.Media.PortMin, *f.Media.PortMax
		if lo < 1024 || hi > 65535 || lo > hi || hi-lo < 3 {
			return nil, keyErr("media.rtp_port_max", "range %d-%d: want 1024 <= min, min+3 <= max <= 65535", lo, hi)
		}
		c.Media.PortMin, c.Media.PortMax = uint16(lo), uint16(hi)
	}
	c.Media.InactivityTimeout = 60 * time.Second
	if f.Media.InactivityTimeout != nil {
		d, err := time.ParseDuration(*f.Media.InactivityTimeout)
		if err != nil || d < minInactivity || d > time.Hour {
			return nil, keyErr("media.inactivity_timeout", "%q: want a duration from %v to 1h", *f.Media.InactivityTimeout, minInactivity)
		}
		c.Media.InactivityTimeout = d
	}
	for i, s := range f.Media.AllowPeers {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, keyErr(fmt.Sprintf("media.allow_peers[%d]", i), "%v", err)
		}
		c.Media.AllowPeers = append(c.Media.AllowPeers, p)
	}
	// Every call binds an RTP/RTCP port pair: the range must hold the cap.
	c.MaxCalls = defaultMaxCalls
	if f.MaxCalls != nil {
		c.MaxCalls = *f.MaxCalls
		if c.MaxCalls < 1 || c.MaxCalls > maxMaxCalls {
			return nil, keyErr("max_calls", "%d: want 1 to %d", c.MaxCalls, maxMaxCalls)
		}
	}
	if pairs := (int(c.Media.PortMax) - int(c.Media.PortMin) + 1) / 2; c.MaxCalls > pairs {
		if f.MaxCalls == nil {
			c.MaxCalls = pairs
		} else {
			return nil, keyErr("max_calls", "%d calls need %d RTP ports; media.rtp_port_min..max holds %d pairs", c.MaxCalls, 2*c.MaxCalls, pairs)
		}
	}
	if f.ListenPeer != "" {
		ap, err := netip.ParseAddrPort(f.ListenPeer)
		if err != nil || ap.Port() == 0 || !ap.Addr().IsValid() || ap.Addr().IsUnspecified() {
			return nil, keyErr("listen_peer", "%q: want the IP:PORT plain listeners accept requests from", f.ListenPeer)
		}
		if len(c.Listen) == 0 {
			return nil, keyErr("listen_peer", "needs listen")
		}
		c.ListenPeer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}

	if len(f.Accounts) == 0 {
		return nil, keyErr("account", "at least one [[account]] is required")
	}
	names := map[string]bool{}
	for i, af := range f.Accounts {
		a, err := af.validate(fmt.Sprintf("account[%d]", i), abs)
		if err != nil {
			return nil, err
		}
		if af.MaxCalls == nil {
			a.MaxCalls = min(defaultAccountMaxCalls, c.MaxCalls)
		} else if a.MaxCalls > c.MaxCalls {
			return nil, keyErr(fmt.Sprintf("account[%d].max_calls", i), "%d is above the global max_calls %d", a.MaxCalls, c.MaxCalls)
		}
		if a.PasswordCred != "" && c.CredentialStore == "" {
			return nil, keyErr(fmt.Sprintf("account[%d].password_cred", i), "needs credential_store")
		}
		if names[a.Name] {
			return nil, keyErr(fmt.Sprintf("account[%d].name", i), "duplicate account name %q", a.Name)
		}
		names[a.Name] = true
		c.Accounts = append(c.Accounts, a)
	}
	return c, nil
}

func (af acctFile) validate(key string, abs func(string) string) (Account, error) {
	a := Account{
		Name: af.Name, User: af.User, AuthUser: af.AuthUser, Domain: af.Domain,
		Registrar: af.Registrar, ServerName: af.ServerName, PasswordFile: abs(af.PasswordFile), PasswordCred: af.PasswordCred,
		DigestMin: policy.DefaultDigestMin, MediaSecurity: MediaDTLS, Answer: AnswerAuto,
		Expires: 600 * time.Second, Keepalive: 90 * time.Second,
		RetryBase: 30 * time.Second, RetryMax: 1800 * time.Second,
		AllowRefer: af.AllowRefer, AnswerDelay: 0, CallWaiting: CallWaitingRing,
	}
	if a.User == "" {
		return a, keyErr(key+".user", "required")
	}
	if a.Name == "" {
		a.Name = a.User
	}
	if a.AuthUser == "" {
		a.AuthUser = a.User
	}
	if a.Registrar == "" {
		return a, keyErr(key+".registrar", "required (host:port of the TLS registrar)")
	}
	host, port, err := net.SplitHostPort(a.Registrar)
	if err != nil {
		return a, keyErr(key+".registrar", "%v", err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return a, keyErr(key+".registrar", "bad port %q", port)
	}
	if a.Domain == "" {
		a.Domain = host
	}
	if a.ServerName == "" {
		a.ServerName = host
	}
	if (a.PasswordFile == "") == (a.PasswordCred == "") {
		return a, keyErr(key+".password_cred", "set exactly one of password_cred (a credential-store name) and password_file")
	}
	if af.Transport != nil && *af.Transport != "tls" {
		return a, keyErr(key+".transport", "%q: registration is TLS only", *af.Transport)
	}
	if af.DigestMin != nil {
		d, err := policy.ParseDigest(*af.DigestMin)
		if err != nil || *af.DigestMin == "" {
			return a, keyErr(key+".digest_min", "%q: want MD5, SHA-256 or SHA-512-256", *af.DigestMin)
		}
		a.DigestMin = d
	}
	if af.MediaSecurity != nil {
		switch m := MediaSecurity(*af.MediaSecurity); m {
		case MediaSDES, MediaDTLS:
			a.MediaSecurity = m
		default:
			return a, keyErr(key+".media_security", "%q: want \"sdes\" or \"dtls\" (SRTP is mandatory)", m)
		}
	}
	if af.Answer != nil {
		switch m := AnswerMode(*af.Answer); m {
		case AnswerAuto, AnswerManual:
			a.Answer = m
		default:
			return a, keyErr(key+".answer", "%q: want \"auto\" or \"manual\"", m)
		}
	}
	if af.CallWaiting != nil {
		switch m := CallWaiting(*af.CallWaiting); m {
		case CallWaitingRing, CallWaitingBusy, CallWaitingParallel:
			a.CallWaiting = m
		default:
			return a, keyErr(key+".call_waiting", "%q: want \"ring\", \"busy\" or \"parallel\"", m)
		}
	}
	durs := []struct {
		name string
		in   *string
		out  *time.Duration
		min  time.Duration
	}{
		{"expires", af.Expires, &a.Expires, 10 * time.Second},
		{"keepalive", af.Keepalive, &a.Keepalive, time.Second},
		{"retry_base", af.RetryBase, &a.RetryBase, 100 * time.Millisecond},
		{"retry_max", af.RetryMax, &a.RetryMax, 100 * time.Millisecond},
		{"answer_delay", af.AnswerDelay, &a.AnswerDelay, 0},
	}
	for _, d := range durs {
		if d.in == nil {
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil {
			return a, keyErr(key+"."+d.name, "%v", err)
		}
		if v < d.min {
			return a, keyErr(key+"."+d.name, "%v is below the minimum %v", v, d.min)
		}
		*d.out = v
	}
	if a.RetryMax < a.RetryBase {
		return a, keyErr(key+".retry_max", "%v is below retry_base %v", a.RetryMax, a.RetryBase)
	}
	a.Dialing = dialplan.Defaults()
	if d := af.Dialing; d != nil {
		a.Dialing.Allow = append([]string(nil), d.Allow...)
		if d.International != nil {
			a.Dialing.International = *d.International
		}
		a.Dialing.Home = d.HomeCountry
		if d.PremiumPrefixes != nil {
			a.Dialing.Premium = append([]string(nil), (*d.PremiumPrefixes)...)
		}
		if d.MaxPerHour != nil {
			a.Dialing.MaxPerHour = *d.MaxPerHour
		}
		if d.MaxPerDay != nil {
			a.Dialing.MaxPerDay = *d.MaxPerDay
		}
		for i, h := range d.Hours {
			w, err := dialplan.ParseWindow(h)
			if err != nil {
				return a, keyErr(fmt.Sprintf("%s.dialing.hours[%d]", key, i), "%v", err)
			}
			a.Dialing.Hours = append(a.Dialing.Hours, w)
		}
	}
	if err := a.Dialing.Validate(); err != nil {
		return a, keyErr(key+".dialing", "%v", err)
	}
	if af.MaxCalls != nil {
		a.MaxCalls = *af.MaxCalls
		if a.MaxCalls < 1 || a.MaxCalls > maxMaxCalls {
			return a, keyErr(key+".max_calls", "%d: want 1 to %d", a.MaxCalls, maxMaxCalls)
		}
	}
	if af.Realm != nil {
		a.Realm = *af.Realm
		if a.Realm == "" || len(a.Realm) > 256 || strings.ContainsAny(a.Realm, "\"\\\r\n") {
			return a, keyErr(key+".realm", "%q: want the registrar's digest realm", a.Realm)
		}
	}
	return a, nil
}

// Call caps: a desk phone has a handful of lines.
const (
	defaultMaxCalls        = 8
	defaultAccountMaxCalls = 4
	maxMaxCalls            = 64
	// minInactivity keeps a typo from ending calls at the first lost packet.
	minInactivity = 2 * time.Second
)

// parsePrefix reads a CIDR prefix or a bare address (a host prefix).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p != p.Masked() {
			return p, fmt.Errorf("%q has host bits set; want %s", s, p.Masked())
		}
		if p.Addr().Is4In6() {
			return p, fmt.Errorf("%q: write IPv4 networks as IPv4", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validBoardName is a board name as board.Lookup knows them: lower-case
// letters, digits and dashes.
func validBoardName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func parseListener(s string) (Listener, error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok {
		return Listener{}, fmt.Errorf("%q: want udp:IP:PORT or tcp:IP:PORT", s)
	}
	if network != "udp" && network != "tcp" {
		return Listener{}, fmt.Errorf("%q: network %q, want udp or tcp", s, network)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return Listener{}, fmt.Errorf("%q: %v", s, err)
	}
	return Listener{Network: network, Addr: ap}, nil
}

func (pf provFile) validate(stateDir string, abs func(string) string) (Provision, error) {
	p := Provision{Server: pf.Server, ServerName: pf.ServerName, ServerCA: abs(pf.ServerCA), DeviceCA: abs(pf.DeviceCA),
		HintFile: abs(pf.HintFile), CheckInInterval: 15 * time.Minute, Model: pf.Model}
	if len(p.Model) > 64 {
		return p, keyErr("provision.model", "longer than 64 bytes")
	}
	if p.Server == "" {
		if !pf.empty() {
			return p, keyErr("provision.server", "required: the [provision] table names no fleet server")
		}
		return Provision{}, nil
	}
	u, err := url.Parse(p.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return p, keyErr("provision.server", "%q: want https://NAME[:PORT]", p.Server)
	}
	if p.ServerName == "" {
		p.ServerName = u.Hostname()
	}
	if pf.ServerCA == "" {
		return p, keyErr("provision.server_ca", "required: the fleet server's CA is pinned by the image")
	}
	if pf.DeviceCA == "" {
		return p, keyErr("provision.device_ca", "required: certificates the fleet issues must chain to its device CA")
	}
	if stateDir == "" {
		return p, keyErr("state_dir", "required with [provision] (the identity and its certificate live in the state file)")
	}
	if pf.CheckInInterval != nil {
		d, err := time.ParseDuration(*pf.CheckInInterval)
		if err != nil || d < 10*time.Second || d > 24*time.Hour {
			return p, keyErr("provision.checkin_interval", "%q: want a duration from 10s to 24h", *pf.CheckInInterval)
		}
		p.CheckInInterval = d
	}
	if err := pf.validateUptane(&p, u, abs); err != nil {
		return p, err
	}
	return p, nil
}

func (pf provFile) empty() bool {
	return pf.Server == "" && pf.ServerName == "" && pf.ServerCA == "" && pf.DeviceCA == "" && pf.HintFile == "" &&
		pf.CheckInInterval == nil && pf.Model == "" && pf.ImageRoot == "" && pf.DirectorRoot == "" && pf.ImageRepo == "" &&
		pf.Director == "" && pf.ConfigTrial == nil && pf.Maintenance == nil
}

// Bounds of provision.config_trial: long enough for a registration with
// its retries, short enough that a broken document does not keep a phone
// off the network for long.
const (
	minConfigTrial     = 10 * time.Second
	maxConfigTrial     = time.Hour
	defaultConfigTrial = 2 * time.Minute
	maxMaintenance     = 16
)

// validateUptane checks the keys of the fleet's two repositories.
func (pf provFile) validateUptane(p *Provision, server *url.URL, abs func(string) string) error {
	p.ImageRoot, p.DirectorRoot, p.ImageRepo = abs(pf.ImageRoot), abs(pf.DirectorRoot), pf.ImageRepo
	p.ConfigTrial = defaultConfigTrial
	set := 0
	for _, v := range []string{pf.ImageRoot, pf.DirectorRoot, pf.ImageRepo} {
		if v != "" {
			set++
		}
	}
	if set == 0 {
		if pf.Director != "" || pf.ConfigTrial != nil || pf.Maintenance != nil {
			return keyErr("provision.director_root", "required with director_url, config_trial and maintenance: they configure the fleet's repositories")
		}
		return nil
	}
	if set != 3 {
		return keyErr("provision.image_root", "image_root, director_root and image_repo go together: firmware installs only when both repositories agree")
	}
	if u, err := url.Parse(p.ImageRepo); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return keyErr("provision.image_repo", "%q: want http(s)://HOST[:PORT]/PATH (any server: what it serves is verified)", p.ImageRepo)
	}
	p.Director = strings.TrimSuffix(server.String(), "/") + "/director/"
	if pf.Director != "" {
		u, err := url.Parse(pf.Director)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return keyErr("provision.director_url", "%q: want https://HOST[:PORT]/PATH/ (mutual TLS with the device certificate)", pf.Director)
		}
		p.Director = strings.TrimSuffix(pf.Director, "/") + "/"
	}
	if pf.ConfigTrial != nil {
		d, err := time.ParseDuration(*pf.ConfigTrial)
		if err != nil || d < minConfigTrial || d > maxConfigTrial {
			return keyErr("provision.config_trial", "%q: want a duration from %v to %v", *pf.ConfigTrial, minConfigTrial, maxConfigTrial)
		}
		p.ConfigTrial = d
	}
	if len(pf.Maintenance) > maxMaintenance {
		return keyErr("provision.maintenance", "%d windows, want at most %d", len(pf.Maintenance), maxMaintenance)
	}
	for i, s := range pf.Maintenance {
		w, err := dialplan.ParseWindow(s)
		if err != nil {
			return keyErr(fmt.Sprintf("provision.maintenance[%d]", i), "%v", err)
		}
		p.Maintenance = append(p.Maintenance, w)
	}
	return nil
}

// InMaintenance reports whether t (in its location) falls in a
// maintenance window; true when none is configured.
func (p Provision) InMaintenance(t time.Time) bool {
	if len(p.Maintenance) == 0 {
		return true
	}
	for _, w := range p.Maintenance {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

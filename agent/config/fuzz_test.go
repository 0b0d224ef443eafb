package config

import (
	"reflect"
	"testing"
)

// FuzzParseWithDocument: fleet documents come from the director (online
// keys) over the network. Whatever the bytes, merging them over the image
// never panics, and a document that is accepted leaves every image-only
// setting exactly as the image has it.
//
//fuzz:budget 250000
func FuzzParseWithDocument(f *testing.F) {
	for _, seed := range []string{
		docSeedAccount, "max_calls = 2\n", "[media]\ninactivity_timeout = \"30s\"\n[events]\nhostname = \"x\"\n",
		"[tls]\nca_file = \"/x\"\n", "state_dir = \"/x\"\n", "[[account]]\nname = \"desk\"\npassword_sealed = \"hps1.x\"\n",
		"account = 3\n", "[provision]\nconfig_trial = \"1h\"\n", "[media.allow_peers]\nx = 1\n", "",
	} {
		f.Add([]byte(seed))
	}
	want, err := Parse([]byte(image), "/etc/hp")
	if err != nil {
		f.Fatalf("Parse(image) = %v", err)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := ParseWithDocument([]byte(image), "/etc/hp", doc)
		if err != nil {
			return
		}
		for _, kv := range []struct {
			key       string
			got, want any
		}{
			{"board", c.Board, want.Board},
			{"state_dir", c.StateDir, want.StateDir},
			{"credential_store", c.CredentialStore, want.CredentialStore},
			{"control_socket", c.ControlSocket, want.ControlSocket},
			{"control_uids", c.ControlUIDs, want.ControlUIDs},
			{"lockdown_policy", c.LockdownPolicy, want.LockdownPolicy},
			{"lockdown_check_interval", c.LockdownCheck, want.LockdownCheck},
			{"listen", c.Listen, want.Listen},
			{"listen_peer", c.ListenPeer, want.ListenPeer},
			{"tls", c.TLS, want.TLS},
			{"provision", c.Provision, want.Provision},
			{"update", c.Update, want.Update},
			{"audio", c.Audio, want.Audio},
			{"events.syslog_ca", c.Events.SyslogCA, want.Events.SyslogCA},
			{"media.allow_peers", c.Media.AllowPeers, want.Media.AllowPeers},
		} {
			if !reflect.DeepEqual(kv.got, kv.want) {
				t.Fatalf("ParseWithDocument(%q) changed %s: %v, image has %v", doc, kv.key, kv.got, kv.want)
			}
		}
		for _, a := range c.Accounts {
			if a.PasswordFile != "" {
				t.Fatalf("ParseWithDocument(%q) gave account %s a password_file %q", doc, a.Name, a.PasswordFile)
			}
		}
	})
}

const docSeedAccount = "[[account]]\nname = \"desk\"\nregistrar = \"pbx:5061\"\n[[account]]\nuser = \"bob\"\nregistrar = \"pbx:5061\"\npassword_cred = \"sip/bob\"\n"

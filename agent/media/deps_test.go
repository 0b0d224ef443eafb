package media

import (
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

// TestDeps bans upward and sideways imports: media sits below agent/sip and
// reaches of ours only the crypto policy, the audio devices and its G.722
// codec, never call control, the agent, the binaries, board wiring, test
// harnesses or lockdown (the agent relays pinholes); it links no SIP stack
// and no testing helpers.
func TestDeps(t *testing.T) {
	deptest.Only(t, "agent/media/g722", "crypto/policy", "hal/audio")
	deptest.Check(t, "github.com/emiago/diago", "github.com/emiago/sipgo")
}

package media

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/rtp"

	"github.com/hardphone/hardphone/crypto/policy"
)

// TestOnlyWireWrites parses the package and fails if any function other
// than the wire's three senders calls a socket write method, or if a UDP
// socket is handed to another package (which could then write to it).
// Together with wire's own checks this is the "no plaintext can be sent"
// property in structural form.
func TestOnlyWireWrites(t *testing.T) {
	writes := map[string]bool{
		"Write": true, "WriteTo": true, "WriteToUDP": true, "WriteToUDPAddrPort": true,
		"WriteMsgUDP": true, "WriteMsgUDPAddrPort": true,
	}
	allowed := map[string]bool{"wire.sendRTP": true, "wire.sendRTCP": true, "wire.sendDTLS": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			fname := fn.Name.Name
			if fn.Recv != nil && len(fn.Recv.List) == 1 {
				typ := fn.Recv.List[0].Type
				if st, ok := typ.(*ast.StarExpr); ok {
					typ = st.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					fname = id.Name + "." + fname
				}
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if writes[sel.Sel.Name] && !allowed[fname] {
					t.Errorf("%s: %s calls %s; only the wire may write to a socket", fset.Position(call.Pos()), fname, sel.Sel.Name)
				}
				// A socket passed into pion (dtls.Client, srtp.NewSessionSRTP)
				// would let it write RTP on its own.
				if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "dtls" || pkg.Name == "srtp") {
					for _, arg := range call.Args {
						if s, ok := arg.(*ast.SelectorExpr); ok && strings.Contains(s.Sel.Name, "sock") {
							t.Errorf("%s: %s hands a socket to %s.%s", fset.Position(call.Pos()), fname, pkg.Name, sel.Sel.Name)
						}
					}
				}
				return true
			})
		}
	}
}

// TestWireRefusesWithoutKeys: with no SRTP context the wire writes nothing,
// and the DTLS path refuses anything that is not a DTLS record.
func TestWireRefusesWithoutKeys(t *testing.T) {
	s := newTestSession(t, testConfig(t, "a", SecurityDTLS))
	to := s.local[compRTP]
	hdr := &rtp.Header{Version: 2}
	if err := s.w.sendRTP(nil, to, hdr, make([]byte, 160)); err != errNoKeys {
		t.Fatalf("sendRTP(no context) = %v, want errNoKeys", err)
	}
	if err := s.w.sendRTCP(nil, compRTP, to, make([]byte, 8)); err != errNoKeys {
		t.Fatalf("sendRTCP(no context) = %v, want errNoKeys", err)
	}
	rtpPkt, err := (&rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 160)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{rtpPkt, {}, {0x00, 0x01}, {64}} {
		if _, err := s.w.sendDTLS(compRTP, to, b); err != errNotDTLS {
			t.Fatalf("sendDTLS(% x...) = %v, want errNotDTLS", b[:min(len(b), 2)], err)
		}
	}
	if st := s.Stats(); st.PacketsSent != 0 || st.RTCPSent != 0 {
		t.Fatalf("Stats() = %+v after refused writes", st)
	}
}

// TestSecretsRedacted: every type holding key material logs as REDACTED.
func TestSecretsRedacted(t *testing.T) {
	suite := policy.SRTPSuites()[0]
	key, err := newSDESKey(suite)
	if err != nil {
		t.Fatal(err)
	}
	id, err := newDTLSIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := parseCrypto(key.cryptoLine(1))
	if err != nil {
		t.Fatal(err)
	}
	keys := sessionKeys{Suite: suite, LocalKey: key.Key, LocalSalt: key.Salt, RemoteKey: key.Key, RemoteSalt: key.Salt}
	params := mediaParams{proto: protoSAVP, localKey: key, remoteKey: key}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("secrets", "key", key, "attr", ca, "param", ca.Keys[0], "keys", keys, "id", id, "params", params)
	out := buf.String()
	if strings.Count(out, "REDACTED") != 5 {
		t.Fatalf("log %s: want 5 REDACTED values", out)
	}
	inline := strings.TrimPrefix(strings.Fields(key.cryptoLine(1))[2], "inline:")
	for _, leak := range []string{inline, string(key.Key), "PRIVATE"} {
		if strings.Contains(out, leak) {
			t.Fatalf("log %s leaks key material", out)
		}
	}
	// The stream description logs its suite, not its keys.
	if !strings.Contains(out, suite.SDESName) {
		t.Fatalf("log %s lacks the suite name", out)
	}
}

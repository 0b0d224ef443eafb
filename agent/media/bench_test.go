package media

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	"github.com/pion/rtp"

	"github.com/hardphone/hardphone/crypto/policy"
)

// BenchmarkSRTP protects and unprotects one 20 ms G.711 packet (12-byte
// header, 160-byte payload: 172 bytes) per iteration through our contexts,
// with the replay window on and one reused header, beside raw
// crypto/cipher AES-128-GCM Seal+Open of the same bytes: the ceiling.
func BenchmarkSRTP(b *testing.B) {
	payload := make([]byte, frameSamples)
	for _, name := range []string{"AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"} {
		b.Run(name, func(b *testing.B) {
			suite, err := policy.SRTPSuiteBySDESName(name)
			if err != nil {
				b.Fatal(err)
			}
			k, err := newSDESKey(suite)
			if err != nil {
				b.Fatal(err)
			}
			tx, err := newSRTPTx(suite, k.Key, k.Salt)
			if err != nil {
				b.Fatal(err)
			}
			rx, err := newSRTPRx(suite, k.Key, k.Salt, nil)
			if err != nil {
				b.Fatal(err)
			}
			hdr := &rtp.Header{Version: 2, PayloadType: 0, SSRC: 0xdecafbad}
			rxHdr := &rtp.Header{}
			plain := make([]byte, maxDatagram)
			b.ReportAllocs()
			b.SetBytes(int64(hdr.MarshalSize() + len(payload)))
			for b.Loop() {
				hdr.SequenceNumber++
				hdr.Timestamp += frameSamples
				tx.mu.Lock()
				pkt, err := tx.sealRTP(hdr, payload)
				tx.mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rx.openRTP(plain[:0], pkt, rxHdr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("crypto_cipher_aes128gcm", func(b *testing.B) {
		key, nonce := make([]byte, 16), make([]byte, 12)
		if _, err := rand.Read(key); err != nil {
			b.Fatal(err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			b.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			b.Fatal(err)
		}
		hdr := make([]byte, 12)
		sealed := make([]byte, 0, 256)
		opened := make([]byte, 0, 256)
		b.ReportAllocs()
		b.SetBytes(int64(len(hdr) + len(payload)))
		for b.Loop() {
			nonce[11]++
			sealed = aead.Seal(sealed[:0], nonce, payload, hdr)
			if _, err := aead.Open(opened[:0], nonce, sealed, hdr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

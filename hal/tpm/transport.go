package tpm

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// maxResponse bounds a response read from a socket. TPM 2.0 responses are at
// most MAX_RESPONSE_SIZE, 4096 bytes on every TPM we know; anything far
// beyond is a confused or hostile peer.
const maxResponse = 64 << 10

// commandTimeout bounds one command over a socket, so a wedged swtpm fails
// the caller instead of hanging it. Real chips behind /dev/tpmrm0 are
// bounded by the kernel driver instead.
const commandTimeout = 60 * time.Second

// streamTPM speaks the plain TPM 2.0 command stream that swtpm serves on its
// --server socket (unix or TCP), with no simulator framing around it:
//
//	command:  | tag u16 | commandSize u32 | commandCode u32  | handles, auth, parameters |
//	response: | tag u16 | responseSize u32 | responseCode u32 | handles, parameters, auth |
//
// Both sizes count the whole message, header included (TPM 2.0 Part 1,
// "Command/Response Structure"). It dials once per command: swtpm keeps no state in a connection
// (it is not a resource manager), so a fresh connection each time survives
// a swtpm restart without any reconnect logic.
type streamTPM struct {
	network, addr string
}

// Send implements transport.TPM. It is not safe for concurrent use; TPM
// serializes callers.
func (s *streamTPM) Send(cmd []byte) ([]byte, error) {
	conn, err := net.DialTimeout(s.network, s.addr, commandTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", s.network, s.addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	if _, err := conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("write command to %s: %w", s.addr, err)
	}
	return readResponse(conn)
}

// Close implements transport.TPMCloser; there is no connection to close
// between commands.
func (s *streamTPM) Close() error { return nil }

// readResponse reads exactly one response, sized by its header.
func readResponse(r io.Reader) ([]byte, error) {
	var hdr [10]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read response header: %w (%w)", err, errShortResponse)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < uint32(len(hdr)) || size > maxResponse {
		return nil, responseSizeError{got: size, max: maxResponse}
	}
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(r, rsp[len(hdr):]); err != nil {
		return nil, fmt.Errorf("read response body (%d bytes): %w (%w)", size, err, errShortResponse)
	}
	return rsp, nil
}

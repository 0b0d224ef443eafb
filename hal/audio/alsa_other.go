//go:build !linux || !(amd64 || arm64 || arm || 386 || riscv64 || loong64)

package audio

import "fmt"

// ALSASource is only available on Linux (with the generic ioctl encoding).
type ALSASource struct{}

// ALSASink is only available on Linux (with the generic ioctl encoding).
type ALSASink struct{}

// OpenALSASource returns ErrUnsupported outside Linux.
func OpenALSASource(device string, rate int, opts ...ALSAOption) (*ALSASource, error) {
	return nil, fmt.Errorf("open alsa source %s: %w", device, ErrUnsupported)
}

// OpenALSASink returns ErrUnsupported outside Linux.
func OpenALSASink(device string, rate int, opts ...ALSAOption) (*ALSASink, error) {
	return nil, fmt.Errorf("open alsa sink %s: %w", device, ErrUnsupported)
}

// ReadFrame returns ErrUnsupported.
func (s *ALSASource) ReadFrame(buf []int16) (int, error) { return 0, ErrUnsupported }

// Rate returns 0.
func (s *ALSASource) Rate() int { return 0 }

// Params returns zero parameters.
func (s *ALSASource) Params() ALSAParams { return ALSAParams{} }

// Stats returns zero counters.
func (s *ALSASource) Stats() Stats { return Stats{} }

// Close returns ErrUnsupported.
func (s *ALSASource) Close() error { return ErrUnsupported }

// WriteFrame returns ErrUnsupported.
func (s *ALSASink) WriteFrame(buf []int16) error { return ErrUnsupported }

// Rate returns 0.
func (s *ALSASink) Rate() int { return 0 }

// Params returns zero parameters.
func (s *ALSASink) Params() ALSAParams { return ALSAParams{} }

// Stats returns zero counters.
func (s *ALSASink) Stats() Stats { return Stats{} }

// Close returns ErrUnsupported.
func (s *ALSASink) Close() error { return ErrUnsupported }

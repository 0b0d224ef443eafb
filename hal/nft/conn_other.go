//go:build !linux

package nft

// Conn is a stand-in on systems without nftables; Open always fails.
type Conn struct{}

// Open returns ErrUnsupported: nftables is Linux only.
func Open() (*Conn, error) { return nil, ErrUnsupported }

// Close does nothing.
func (c *Conn) Close() error { return nil }

// Diff returns ErrUnsupported.
func (c *Conn) Diff(Ruleset) ([]string, error) { return nil, ErrUnsupported }

// Apply returns ErrUnsupported.
func (c *Conn) Apply(Ruleset) (bool, error) { return false, ErrUnsupported }

// Remove returns ErrUnsupported.
func (c *Conn) Remove() error { return ErrUnsupported }

// OtherTables returns ErrUnsupported.
func (c *Conn) OtherTables() ([]string, error) { return nil, ErrUnsupported }

// AddPinholes returns ErrUnsupported.
func (c *Conn) AddPinholes([]Pinhole) error { return ErrUnsupported }

// DelPinholes returns ErrUnsupported.
func (c *Conn) DelPinholes([]Pinhole) error { return ErrUnsupported }

// Pinholes returns ErrUnsupported.
func (c *Conn) Pinholes() ([]Pinhole, error) { return nil, ErrUnsupported }

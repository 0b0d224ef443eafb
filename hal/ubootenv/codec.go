package ubootenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
)

// One environment block of Size bytes, as U-Boot's env_t and libubootenv's
// uboot_env_noredund / uboot_env_redund lay it out:
//
//	single copy (CONFIG_SYS_REDUNDAND_ENVIRONMENT unset):
//	 0      4                                                    Size
//	+------+-----------------------------------------------------+
//	| crc  | name=value\0 name=value\0 ... \0 (zero padding)      |
//	+------+-----------------------------------------------------+
//
//	each of two redundant copies:
//	 0      4       5                                            Size
//	+------+-------+---------------------------------------------+
//	| crc  | flags | name=value\0 name=value\0 ... \0 (padding)   |
//	+------+-------+---------------------------------------------+
//
// crc is CRC-32 (IEEE, as zlib's crc32) over the whole data area, stored
// little-endian. flags counts up with every save (incremental flags, as
// libubootenv uses for files and block devices); of two valid copies the one
// with the larger flags is current, except that 0 follows 255.
// Pairs are written sorted by name, as U-Boot's hash table export and
// libubootenv's sorted list do.

const (
	crcLen = 4
	// MinSize is the smallest block this package accepts: room for the
	// header, the flags byte and the two NULs of an empty environment.
	MinSize = 8
)

// headerLen is the number of bytes in front of the data area.
func headerLen(redundant bool) int {
	if redundant {
		return crcLen + 1
	}
	return crcLen
}

// Encode builds one block of size bytes holding vars. For a redundant copy it
// stores flags in the flags byte; for a single copy flags must be 0.
func Encode(vars map[string]string, size int, redundant bool, flags byte) ([]byte, error) {
	if size < MinSize {
		return nil, fmt.Errorf("encode: block size %d, want at least %d: %w", size, MinSize, errShortBlock)
	}
	if !redundant && flags != 0 {
		return nil, fmt.Errorf("encode: flags %d on a single-copy block: %w", flags, errBadConfig)
	}
	names := make([]string, 0, len(vars))
	for name, value := range vars {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		if strings.IndexByte(value, 0) >= 0 {
			return nil, fmt.Errorf("encode: value of %q holds a NUL byte: %w", name, errBadValue)
		}
		names = append(names, name)
	}
	sort.Strings(names)

	block := make([]byte, size)
	hdr := headerLen(redundant)
	data := block[hdr:]
	n := 0
	for _, name := range names {
		entry := len(name) + 1 + len(vars[name]) + 1
		// Keep one byte for the terminating empty pair.
		if n+entry+1 > len(data) {
			return nil, fmt.Errorf("encode: %d variables need more than %d bytes: %w", len(names), len(data), ErrTooLarge)
		}
		n += copy(data[n:], name)
		data[n] = '='
		n++
		n += copy(data[n:], vars[name])
		data[n] = 0
		n++
	}
	if redundant {
		block[crcLen] = flags
	}
	binary.LittleEndian.PutUint32(block[:crcLen], crc32.ChecksumIEEE(data))
	return block, nil
}

// Decode parses one block. It returns the variables and, for a redundant
// copy, the flags byte. A block whose CRC does not match returns
// ErrNoValidCopy; so does a data area that runs to the end of the block
// without the empty pair that ends the list (libubootenv refuses it too).
//
// As in libubootenv, a pair without '=' or with an empty name is skipped and
// a repeated name keeps its last value, so Decode reads what fw_printenv
// prints.
func Decode(block []byte, redundant bool) (map[string]string, byte, error) {
	hdr := headerLen(redundant)
	if len(block) < MinSize || len(block) < hdr+2 {
		return nil, 0, fmt.Errorf("decode: block of %d bytes: %w", len(block), errShortBlock)
	}
	data := block[hdr:]
	want := binary.LittleEndian.Uint32(block[:crcLen])
	if got := crc32.ChecksumIEEE(data); got != want {
		return nil, 0, fmt.Errorf("decode: crc %08x, stored %08x: %w", got, want, ErrNoValidCopy)
	}
	var flags byte
	if redundant {
		flags = block[crcLen]
	}
	vars := make(map[string]string)
	for len(data) > 0 {
		end := bytes.IndexByte(data, 0)
		if end < 0 {
			return nil, 0, fmt.Errorf("decode: %w", errUnterminated)
		}
		if end == 0 {
			return vars, flags, nil
		}
		pair := data[:end]
		data = data[end+1:]
		eq := bytes.IndexByte(pair, '=')
		if eq <= 0 {
			continue
		}
		vars[string(pair[:eq])] = string(pair[eq+1:])
	}
	return nil, 0, fmt.Errorf("decode: %w", errUnterminated)
}

// checkName applies U-Boot's rules: a name is not empty and holds neither '='
// nor NUL (libubootenv refuses both; an empty name would make U-Boot drop the
// whole environment).
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name: %w", errBadName)
	}
	if strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("name %q holds '=' or NUL: %w", name, errBadName)
	}
	return nil
}

// newer reports whether flags a is newer than flags b under the incremental
// rule U-Boot's env_import_redund and libubootenv apply: larger wins, 0
// follows 255, and equal flags keep the first copy.
func newer(a, b byte) bool {
	switch {
	case a == 0 && b == 0xff:
		return true
	case a == 0xff && b == 0:
		return false
	}
	return a > b
}

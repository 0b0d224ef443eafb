package audio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// ALSADeviceInfo describes one hardware PCM device, as the kernel lists it
// in /proc/asound/pcm.
type ALSADeviceInfo struct {
	// Name is what OpenALSASource and OpenALSASink take: "hw:C,D".
	Name string
	// Card is the card's ID (/proc/asound/cardC/id), usable as
	// "hw:ID,D" too; "" when the kernel did not say.
	Card string
	// Description is the kernel's name for the PCM.
	Description string
	// Playback and Capture say which ways the device goes.
	Playback, Capture bool
}

// maxProcList bounds what is read of a /proc/asound listing.
const maxProcList = 64 << 10

// ListALSADevices lists the hardware PCM devices of the running kernel.
// A machine with no sound cards (no /proc/asound) has none: an empty list
// and no error.
func ListALSADevices() ([]ALSADeviceInfo, error) {
	return listALSADevices("/proc/asound")
}

func listALSADevices(root string) ([]ALSADeviceInfo, error) {
	data, err := readBounded(root + "/pcm")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list ALSA devices: %w", err)
	}
	devs, err := parseALSAPCMList(data)
	if err != nil {
		return nil, fmt.Errorf("list ALSA devices: %s/pcm: %w", root, err)
	}
	for i := range devs {
		var card, dev int
		fmt.Sscanf(devs[i].Name, "hw:%d,%d", &card, &dev)
		id, err := readBounded(fmt.Sprintf("%s/card%d/id", root, card))
		if err == nil && validALSACardID(strings.TrimSpace(string(id))) {
			devs[i].Card = strings.TrimSpace(string(id))
		}
	}
	return devs, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcList+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxProcList {
		return nil, fmt.Errorf("%s: longer than %d bytes", path, maxProcList)
	}
	return b, nil
}

// parseALSAPCMList parses /proc/asound/pcm, one device per line:
//
//	00-00: Loopback PCM : Loopback PCM : playback 8 : capture 8
//
// (card-device: id : name : the directions with their substream counts).
func parseALSAPCMList(data []byte) ([]ALSADeviceInfo, error) {
	var out []ALSADeviceInfo
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Split(line, " : ")
		head, id, ok := strings.Cut(fields[0], ": ")
		if !ok {
			return nil, fmt.Errorf("line %q: want CARD-DEVICE: ID : NAME : ...", line)
		}
		cs, ds, ok := strings.Cut(head, "-")
		card, err1 := strconv.Atoi(cs)
		dev, err2 := strconv.Atoi(ds)
		if !ok || err1 != nil || err2 != nil || card < 0 || card > maxALSACard || dev < 0 || dev > maxALSADevice {
			return nil, fmt.Errorf("line %q: bad card-device %q", line, head)
		}
		d := ALSADeviceInfo{Name: fmt.Sprintf("hw:%d,%d", card, dev), Description: strings.TrimSpace(id)}
		if len(fields) > 1 {
			d.Description = strings.TrimSpace(fields[1])
		}
		for _, f := range fields[1:] {
			switch {
			case strings.HasPrefix(strings.TrimSpace(f), "playback "):
				d.Playback = true
			case strings.HasPrefix(strings.TrimSpace(f), "capture "):
				d.Capture = true
			}
		}
		out = append(out, d)
	}
	return out, sc.Err()
}

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

// audioFlags choose the sound device on the command line, over the
// config's [audio] table: run, call and phone take them.
type audioFlags struct {
	device, input, output, server string
}

func (a *audioFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.device, "audio", "", "sound device over the config's [audio]: pulse, alsa or none")
	fs.StringVar(&a.input, "mic", "", "microphone: a PulseAudio source name or hw:CARD,DEVICE (see hardphone audio)")
	fs.StringVar(&a.output, "speaker", "", "speaker: a PulseAudio sink name or hw:CARD,DEVICE (see hardphone audio)")
	fs.StringVar(&a.server, "pulse-server", "", "PulseAudio server address (default: $PULSE_SERVER, then the user's)")
}

func (a *audioFlags) set() bool {
	return a.device != "" || a.input != "" || a.output != "" || a.server != ""
}

// apply puts the flags over cfg's [audio] and checks the result as the
// config file's table is checked. A device given on the command line
// starts from that device's defaults, not from the file's names for
// another kind of device.
func (a *audioFlags) apply(cfg *config.Config) error {
	if !a.set() {
		return nil
	}
	au := cfg.Audio
	if a.device != "" && a.device != au.Device {
		au = config.Audio{Device: a.device}
	}
	if a.input != "" {
		au.Input = a.input
	}
	if a.output != "" {
		au.Output = a.output
	}
	if a.server != "" {
		au.Server = a.server
	}
	if au.Device == "none" && (a.input != "" || a.output != "" || a.server != "") {
		return usagef("--mic, --speaker and --pulse-server need a sound device: add --audio pulse or --audio alsa (or set [audio] device)")
	}
	checked, err := au.Check()
	if err != nil {
		return fmt.Errorf("--audio/--mic/--speaker: %w", err)
	}
	cfg.Audio = checked
	return nil
}

// cmdAudio lists the sound devices a call can talk through: the
// PulseAudio server's sinks and sources, and the ALSA hardware PCMs.
func cmdAudio(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("audio", "hardphone audio [--config FILE] [--pulse-server ADDR] [--json]", stderr)
	var cf commonFlags
	cf.register(fs)
	server := fs.String("pulse-server", "", "PulseAudio server address (default: the config's [audio] server, $PULSE_SERVER, then the user's)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, stdout, 0, 0); err != nil {
		return err
	}
	var au config.Audio
	if cf.config != "" {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		au = cfg.Audio
	}
	if *server != "" {
		au.Server = *server
	}
	list := system.ListAudioDevices(au)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(list)
	}
	if au.Device != "" && au.Device != "none" {
		fmt.Fprintf(stdout, "configured: device %s, mic %s, speaker %s\n", au.Device, orDefault(au.Input), orDefault(au.Output))
	}
	fmt.Fprintln(stdout, "PulseAudio (--audio pulse):")
	switch {
	case list.PulseError != "":
		fmt.Fprintf(stdout, "  no server: %s\n", list.PulseError)
	case len(list.Pulse) == 0:
		fmt.Fprintln(stdout, "  the server offers no devices")
	}
	for _, d := range list.Pulse {
		flagName, mark := "--speaker", ""
		if d.Kind == "capture" {
			flagName = "--mic"
		}
		if d.Default {
			mark = " (default)"
		}
		desc := d.Description
		if d.MonitorOf != "" {
			desc += ", monitor of " + d.MonitorOf
		}
		fmt.Fprintf(stdout, "  %-9s %s%s  %s, %d Hz, %d ch\n", flagName, d.Name, mark, desc, d.Rate, d.Channels)
	}
	fmt.Fprintln(stdout, "ALSA hardware (--audio alsa):")
	switch {
	case list.ALSAError != "":
		fmt.Fprintf(stdout, "  %s\n", list.ALSAError)
	case len(list.ALSA) == 0:
		fmt.Fprintln(stdout, "  no sound cards")
	}
	for _, d := range list.ALSA {
		var ways []string
		if d.Playback {
			ways = append(ways, "--speaker")
		}
		if d.Capture {
			ways = append(ways, "--mic")
		}
		fmt.Fprintf(stdout, "  %-18s %s  %s: %s\n", strings.Join(ways, "/"), d.Name, d.Card, d.Description)
	}
	return nil
}

func orDefault(s string) string {
	if s == "" {
		return "(the server's default)"
	}
	return s
}

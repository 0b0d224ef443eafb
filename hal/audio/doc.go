// Package audio is hardphone's audio device layer: the Source a call reads
// microphone frames from and the Sink it writes decoded frames to, and
// their implementations:
//
//   - WAV files (tests and automation; 16-bit mono PCM);
//   - PulseAudio, and PipeWire's PulseAudio server, over the native
//     protocol in pure Go (OpenPulseSource, OpenPulseSink,
//     ListPulseDevices): the desktop;
//   - ALSA hardware PCM devices through the kernel's ioctl interface
//     (OpenALSASource, OpenALSASink, "hw:C,D"): phones and boards without
//     a sound server; Linux only, ErrUnsupported elsewhere.
//
// Devices run at 8000 Hz (G.711) or 16000 Hz (G.722), also 32000 and
// 48000, mono, signed 16-bit, in 20 ms frames (FrameSamplesAt). Every
// device has Rate, Stats (overruns, underruns) and Close.
//
// Threat: everything read from outside is bounded and checked. A WAV
// file's header is parsed with every size checked against the file, and
// a file that is not PCM in the one supported layout is refused. The
// sound server is as trusted as the user's own session (its socket lives
// in the user's runtime directory), but its frames are still capped at
// 1 MiB before the protocol library parses them, and the queues between
// its connection and the call are fixed-size, dropping the oldest audio,
// so neither a stalled server nor a stalled call grows memory or delay.
// ALSA device names become /dev/snd node names only through validated
// integers, and what the kernel reports back is range-checked.
//
// Like all of hal/ it holds device code and no policy, and it imports
// nothing of hardphone's. agent/media, agent/sip, agent and system import
// it, and so does the QEMU test guest test/qemu/alsaguest.
package audio

// Package audio is hardphone's audio device layer: the Source and Sink a call
// reads microphone frames from and writes decoded frames to, and a WAV file
// implementation of both (8 kHz mono 16-bit PCM, the G.711 sample format).
// ALSA and PulseAudio devices will live beside it.
//
// Threat: a WAV file handed to the phone (a prompt, a test vector) is input:
// its header is parsed with every size checked against the file, and a file
// that is not PCM in the one supported layout is refused, never guessed at.
//
// Like all of hal/ it holds device code and no policy, and it imports nothing
// of hardphone's. agent/media, agent/sip and system import it.
package audio

// Package cli holds small helpers the commands share (cmd/hardphone and
// cmd/hpctl). Only cmd imports it; it imports nothing of ours.
package cli

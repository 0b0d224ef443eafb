// Package cli holds small helpers the commands share (cmd/hardphone,
// cmd/hpctl and cmd/hpfleet). Only cmd imports it; it imports nothing of
// ours.
package cli

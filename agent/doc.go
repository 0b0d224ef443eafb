// Package agent is the hardphone daemon: it runs the accounts of one config
// with the parts the wiring hands it (trust anchors and identity, the
// credential store, the updater, the lockdown enforcer), applies the
// lockdown policy before anything listens, opens pinholes as calls come and
// go, confirms a boot that runs (health.go: every account registered or its
// registrar unreachable at the network level), marks a slot good once every
// account stays registered, never blesses a slot below the anti-rollback
// floor, reports its identity and registrar certificates before they
// expire (certexpiry.go), and answers the control protocol
// (agent/control). A fleet member also follows the fleet's director and
// image repositories (fleetsync.go): configuration documents on trial and
// reverted by themselves, firmware in the maintenance window, stale
// metadata reported; Run returns ErrConfigChanged when the configuration
// changes under it. It holds no protocol logic of its own and opens no
// device: package system builds every part.
//
// Imported by system (which builds it) and cmd/hardphone, which runs the
// agent system built and builds no part of it: it only passes an Option
// (WithEventWatcher) and checks ErrConfigChanged. cmd/hardphone also
// imports the agent/ subpackages whose types it speaks (config, control,
// events, history, sip).
package agent

package test

import "os"

// netnsEnv marks a test process that RunInNetns has already moved into its
// own network namespace.
const netnsEnv = "HARDPHONE_NETNS"

// InNetns reports whether this process runs inside the private network
// namespace that RunInNetns created.
func InNetns() bool { return os.Getenv(netnsEnv) == "1" }

package agent

import (
	"runtime/metrics"

	"github.com/hardphone/hardphone/agent/control"
)

// runtimeSamples are the runtime/metrics the status reports.
var runtimeSamples = []string{
	"/sched/goroutines:goroutines",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/metadata/other:bytes",
	"/memory/classes/metadata/mspan/inuse:bytes",
	"/memory/classes/metadata/mcache/inuse:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/cycles/total:gc-cycles",
}

// runtimeStatus reads where the agent's own memory goes.
func runtimeStatus() control.RuntimeStatus {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, name := range runtimeSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0 // a metric this runtime does not have
		}
		return s[i].Value.Uint64()
	}
	return control.RuntimeStatus{
		Goroutines:    int(v(0)),
		HeapLiveBytes: v(1),
		HeapBytes:     v(2) + v(3),
		StackBytes:    v(4),
		RuntimeBytes:  v(5) + v(6) + v(7),
		MappedBytes:   v(8) - v(9),
		AllocBytes:    v(10),
		GCCycles:      v(11),
	}
}

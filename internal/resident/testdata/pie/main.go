// Command pie is TestReleaseCodePIE's child: built -buildmode=pie, it
// releases its code and then runs through relocated tables.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"os"
	"runtime"
	"sort"

	"github.com/hardphone/hardphone/internal/resident"
)

var ops = map[string]func(int) int{"double": func(x int) int { return 2 * x }, "square": func(x int) int { return x * x }}

func main() {
	r, err := resident.ReleaseCode(true)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	var h hash.Hash = sha256.New()
	h.Write([]byte("x"))
	keys := []string{}
	for k := range ops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	total := 0
	for _, k := range keys {
		total += ops[k](7)
	}
	b, _ := json.Marshal(map[string]any{"sum": fmt.Sprintf("%x", h.Sum(nil))[:8], "total": total})
	runtime.GC()
	fmt.Printf("kept=%d released=%d %s\n", r.Kept, r.Mappings, b)
}

//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The guest is a Linux PID 1; elsewhere it only says so.
func main() {
	fmt.Fprintln(os.Stderr, "alsaguest: runs only as PID 1 of a Linux guest")
	os.Exit(2)
}

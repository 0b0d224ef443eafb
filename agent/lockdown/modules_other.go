//go:build !linux

package lockdown

func loadedModules() ([]string, error) { return nil, ErrUnsupported }

func unloadModule(name string) error { return ErrUnsupported }

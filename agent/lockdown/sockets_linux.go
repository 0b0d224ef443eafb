package lockdown

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// listeningSockets reads the socket tables of the caller's network
// namespace and names each socket's owners from /proc/*/fd.
func listeningSockets() ([]Socket, error) {
	var all []Socket
	for _, t := range []struct {
		file  string
		proto Proto
	}{{"tcp", TCP}, {"tcp6", TCP}, {"udp", UDP}, {"udp6", UDP}} {
		path := filepath.Join("/proc/self/net", t.file)
		f, err := os.Open(path)
		if err != nil {
			if os.IsNotExist(err) { // no IPv6 in this kernel
				continue
			}
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		socks, err := parseProcNet(f, t.proto)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		all = append(all, socks...)
	}
	owners, err := socketOwners()
	if err != nil {
		return nil, err
	}
	for i := range all {
		all[i].Owners = owners[all[i].Inode]
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Proto != all[j].Proto {
			return all[i].Proto < all[j].Proto
		}
		if all[i].Addr.Port() != all[j].Addr.Port() {
			return all[i].Addr.Port() < all[j].Addr.Port()
		}
		return all[i].Addr.Addr().Less(all[j].Addr.Addr())
	})
	return all, nil
}

// socketOwners maps socket inodes to the processes that hold them, from the
// "socket:[INODE]" links in /proc/PID/fd. Processes that exit meanwhile, or
// that we may not look into, are skipped.
func socketOwners() (map[uint64][]Owner, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := map[uint64][]Owner{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		var o *Owner
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") {
				continue
			}
			inode, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 64)
			if err != nil {
				continue
			}
			if o == nil {
				comm, _ := os.ReadFile(filepath.Join(dir, "comm")) // empty if it just exited
				exe, _ := os.Readlink(filepath.Join(dir, "exe"))   // none for kernel threads
				o = &Owner{PID: pid, Comm: strings.TrimSuffix(string(comm), "\n")}
				if exe != "" {
					o.Exe = strings.TrimSuffix(filepath.Base(exe), " (deleted)")
				}
			}
			if n := len(out[inode]); n == 0 || out[inode][n-1].PID != pid {
				out[inode] = append(out[inode], *o)
			}
		}
	}
	return out, nil
}

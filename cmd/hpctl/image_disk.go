package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/update/bootchooser"
)

// GPT partition type GUIDs (UEFI spec §5.3.3 and the Discoverable
// Partitions Specification).
var partitionTypes = map[board.Role]string{
	board.RoleBoot: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI System: FAT the firmware reads
	board.RoleSlot: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
	board.RoleData: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
	board.RoleEnv:  "3DE21764-95BD-54BD-A5C3-4ABE786F38A8", // U-Boot environment
}

// ubootFlashSize is the size of QEMU virt's second flash bank, which must
// be exactly this; U-Boot's environment is its first 0x40000 bytes.
const (
	ubootFlashSize = 64 << 20
	ubootEnvSize   = 0x40000
)

// makeDisk lays out the board's disk in OUT/disk.img: a truncated file,
// the GPT written by sfdisk, then each filesystem made on its own (mkfs
// -d, mkfs.vfat -C and mcopy, mkenvimage) and copied in at its offset. It
// also writes U-Boot's environment flash, OUT/flash1.img.
func (o *imageOptions) makeDisk(ctx context.Context, work, slot string, m *imageManifest) error {
	b := o.board
	parts := map[board.Role]string{board.RoleSlot: slot}
	var err error
	if parts[board.RoleBoot], err = o.bootPartition(ctx, work); err != nil {
		return err
	}
	if parts[board.RoleEnv], err = o.envPartition(ctx, work); err != nil {
		return err
	}
	if parts[board.RoleData], err = o.dataPartition(ctx, work); err != nil {
		return err
	}
	disk := filepath.Join(o.out, "disk.img")
	tmp := disk + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	defer os.Remove(tmp)
	if err := f.Truncate(b.Disk.Size()); err != nil {
		f.Close()
		return fmt.Errorf("image build: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	var table strings.Builder
	table.WriteString("label: gpt\nunit: sectors\nfirst-lba: 2048\n")
	for _, p := range b.Disk.Partitions {
		start, err := b.Disk.Start(p.Number)
		if err != nil {
			return err
		}
		fmt.Fprintf(&table, "start=%d, size=%d, type=%s, name=%q\n", start/512, int64(p.SizeMiB)*board.MiB/512, partitionTypes[p.Role], p.Name)
		m.Partitions = append(m.Partitions, partitionInfo{Number: p.Number, Name: p.Name, Role: string(p.Role),
			Offset: start, Size: int64(p.SizeMiB) * board.MiB})
	}
	if err := runTool(ctx, "", strings.NewReader(table.String()), "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", tmp); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	for _, p := range b.Disk.Partitions {
		src := parts[p.Role]
		if p.Role == board.RoleSlot && p.Number != b.Slots[0].Partition {
			continue // slot B stays empty until the first update
		}
		start, err := b.Disk.Start(p.Number)
		if err != nil {
			return err
		}
		if err := copyInto(tmp, start, int64(p.SizeMiB)*board.MiB, src); err != nil {
			return fmt.Errorf("image build: partition %s: %w", p.Name, err)
		}
	}
	if err := os.Rename(tmp, disk); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	m.Disk = disk
	m.Flash = filepath.Join(o.out, "flash1.img")
	return o.flash(ctx, work, m.Flash)
}

// bootPartition is a FAT filesystem holding boot.scr.
func (o *imageOptions) bootPartition(ctx context.Context, work string) (string, error) {
	text, err := bootScriptText(o.board)
	if err != nil {
		return "", err
	}
	cmd := filepath.Join(o.out, "boot.cmd")
	scr := filepath.Join(o.out, "boot.scr")
	if err := os.WriteFile(cmd, text, 0o644); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	if err := runTool(ctx, "", nil, "mkimage", "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none",
		"-n", "hardphone bootchooser", "-d", cmd, scr); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	img := filepath.Join(work, "boot.vfat")
	kib := o.board.Disk.ByRole(board.RoleBoot)[0].SizeMiB * 1024
	if err := runTool(ctx, "", nil, "mkfs.vfat", "-n", "BOOT", "-C", img, strconv.Itoa(kib)); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	if err := runTool(ctx, "", nil, "mcopy", "-i", img, scr, "::boot.scr"); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	return img, nil
}

// envPartition holds both copies of the bootchooser block, A primary and
// B without attempts (it is empty). mkenvimage -r writes the redundant
// layout with flags 1; equal flags make copy 0 current for every reader.
func (o *imageOptions) envPartition(ctx context.Context, work string) (string, error) {
	e := o.board.Env
	var names []string
	for _, sl := range o.board.Slots {
		names = append(names, sl.Name)
	}
	initial := bootchooser.Initial(names, e.Attempts)
	var vars string
	for _, name := range bootchooser.Vars(names) {
		vars += name + "=" + initial[name] + "\n"
	}
	block := filepath.Join(work, "env.bin")
	if err := runTool(ctx, "", strings.NewReader(vars), "mkenvimage", "-r", "-p", "0", "-s", strconv.Itoa(e.Size), "-o", block, "-"); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	b, err := os.ReadFile(block)
	if err != nil {
		return "", err
	}
	p, _ := o.board.Disk.Partition(e.Partition)
	part := make([]byte, int64(p.SizeMiB)*board.MiB)
	copy(part[e.Offset:], b)
	copy(part[e.RedundantOffset:], b)
	img := filepath.Join(work, "env.part")
	return img, os.WriteFile(img, part, 0o644)
}

// dataPartition is ext4 with the --data directory's contents, or just an
// empty state directory.
func (o *imageOptions) dataPartition(ctx context.Context, work string) (string, error) {
	dir := o.data
	if dir == "" {
		dir = filepath.Join(work, "data")
		if err := os.MkdirAll(filepath.Join(dir, strings.TrimPrefix(o.board.StateDir, o.board.Data.Mountpoint+"/")), 0o700); err != nil {
			return "", err
		}
	}
	p := o.board.Disk.ByRole(board.RoleData)[0]
	img := filepath.Join(work, "data.ext4")
	if err := runTool(ctx, "", nil, "mkfs.ext4", "-q", "-F", "-L", p.Name, "-E", "root_owner=0:0", "-d", dir,
		img, strconv.Itoa(p.SizeMiB)+"M"); err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	return img, nil
}

// flash writes U-Boot's own environment into a file the size of QEMU's
// flash bank.
func (o *imageOptions) flash(ctx context.Context, work, out string) error {
	if err := runTool(ctx, "", strings.NewReader(ubootFlashEnv(o.board)), "mkenvimage", "-s", strconv.Itoa(ubootEnvSize), "-o", out, "-"); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	return os.Truncate(out, ubootFlashSize)
}

// copyInto copies src into dst at off like dd conv=notrunc,sparse: blocks
// of zeros are skipped, since dst is a fresh sparse file.
func copyInto(dst string, off, room int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() > room {
		return fmt.Errorf("%s is %d bytes, the partition holds %d", src, st.Size(), room)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	pos := off
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], pos); err != nil {
				out.Close()
				return err
			}
		}
		pos += int64(n)
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	return out.Close()
}

package ubootscript

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/hardphone/hardphone/update/bootchooser"
)

// Script renders the U-Boot boot script (a `mkimage -T script` source)
// that implements the bootchooser over a redundant fw_env block: the same
// two-copy layout hal/ubootenv and fw_setenv use, each copy
// [crc32][flags][name=value\0...\0]. U-Boot's own environment lives
// elsewhere (flash); this block is only read and written as data:
//
//   - read both copies; `setexpr.b` loads each flags byte; moving the CRC
//     one byte up (over the flags byte) turns a copy into the single-copy
//     layout `env import -c` checks, so a torn copy is refused by its CRC,
//     never trusted;
//   - the current copy is the valid one with the newer flags (larger wins,
//     0 follows 255; equal keeps copy 0), libubootenv's rule;
//   - take the first slot in bootchooser.OrderVar with attempts left and decrement
//     them; when none has any, reset every counter and reset the board;
//   - write the other copy with flags+1 (`env export -c`, CRC moved back
//     down, flags byte set), then boot the slot with bootchooser.CmdlineKey
//     and its name.
//
// A power cut during the write leaves the copy being written with a bad
// CRC: the next boot uses the old copy (the attempt is not counted, which
// errs towards trying the slot again, never towards a slot with no tries).
// Only the bootchooser variables survive a write by U-Boot: the block holds
// nothing else.
func Script(p ScriptParams) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("boot script: %w", err)
	}
	var names []string
	for _, s := range p.Slots {
		names = append(names, s.Name)
	}
	data := struct {
		ScriptParams
		Vars, DefaultOrder, OrderVar, CmdlineKey string
		Off0, Off1, Blocks, ImportSize           int64
		Slots                                    []scriptSlot
	}{
		ScriptParams: p,
		Vars:         strings.Join(bootchooser.Vars(names), " "), DefaultOrder: strings.Join(names, " "),
		OrderVar: bootchooser.OrderVar, CmdlineKey: bootchooser.CmdlineKey,
		Off0: p.EnvOffset / 512, Off1: p.EnvRedundantOffset / 512, Blocks: int64(p.EnvSize) / 512,
		// The copy's data area plus the CRC in front: the size minus the
		// flags byte.
		ImportSize: int64(p.EnvSize) - 1,
	}
	for _, s := range p.Slots {
		data.Slots = append(data.Slots, scriptSlot{Name: s.Name, Partition: s.Partition, Left: bootchooser.LeftVar(s.Name)})
	}
	var out bytes.Buffer
	if err := scriptTemplate.Execute(&out, data); err != nil {
		return nil, fmt.Errorf("boot script: %w", err)
	}
	return out.Bytes(), nil
}

// ScriptParams are the board facts the script needs.
type ScriptParams struct {
	// Board names the board in the script's first line.
	Board string
	// Interface and Device name the disk in U-Boot's commands ("virtio"
	// 0, "mmc" 1).
	Interface string
	Device    int
	// EnvPartition is the partition number of the environment block;
	// EnvOffset and EnvRedundantOffset the copies' byte offsets in it
	// (sector aligned), EnvSize the size of each copy.
	EnvPartition                  int
	EnvOffset, EnvRedundantOffset int64
	EnvSize                       int
	// Attempts is what a counter starts at and is reset to (1 to
	// bootchooser.MaxAttempts).
	Attempts int
	// Slots in default order, each with its partition number.
	Slots []ScriptSlot
	// Image and Initrd are the file names inside a slot; Cmdline the
	// kernel command line before bootchooser.CmdlineKey.
	Image, Initrd, Cmdline string
	// Scratch RAM addresses: Env0 and Env1 receive the two copies, Tmp is
	// four bytes of scratch, Export receives the written copy and must have
	// room for U-Boot's whole CONFIG_ENV_SIZE (`env export -s` clears that
	// much whatever size it is given).
	Env0, Env1, Tmp, Export int64
}

// ScriptSlot is one slot the script can boot.
type ScriptSlot struct {
	Name      string
	Partition int
}

type scriptSlot struct {
	Name      string
	Partition int
	Left      string
}

func (p ScriptParams) validate() error {
	if len(p.Slots) < 2 {
		return errors.New("want at least two slots")
	}
	for _, s := range p.Slots {
		if !validName(s.Name) || s.Partition < 1 {
			return fmt.Errorf("slot %q on partition %d: want a name of letters and digits on a partition >= 1", s.Name, s.Partition)
		}
	}
	if p.Attempts < 1 || p.Attempts > bootchooser.MaxAttempts {
		return fmt.Errorf("attempts %d, want 1 to %d", p.Attempts, bootchooser.MaxAttempts)
	}
	if p.EnvSize < 0x1000 || p.EnvSize%512 != 0 || p.EnvOffset%512 != 0 || p.EnvRedundantOffset%512 != 0 {
		return errors.New("environment copies must be sector aligned and at least 4 KiB")
	}
	if p.Interface == "" || p.Image == "" || p.Initrd == "" {
		return errors.New("interface, image and initrd are required")
	}
	return nil
}

// validName is a slot name the script can use unquoted in variable names.
func validName(n string) bool {
	if n == "" || len(n) > 16 {
		return false
	}
	for _, r := range n {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

var scriptTemplate = template.Must(template.New("boot.scr").Funcs(template.FuncMap{
	"hex": func(v int64) string { return fmt.Sprintf("%#x", v) },
	"add": func(a int64, b int) int64 { return a + int64(b) },
}).Parse(`# hardphone bootchooser for board {{.Board}}, generated by hpctl image build.
echo "HPBOOT script"
part start {{.Interface}} {{.Device}} {{.EnvPartition}} hp_envblk
setexpr hp_blk0 ${hp_envblk} + {{printf "%#x" .Off0}}
setexpr hp_blk1 ${hp_envblk} + {{printf "%#x" .Off1}}
{{.Interface}} read {{hex .Env0}} ${hp_blk0} {{printf "%#x" .Blocks}}
{{.Interface}} read {{hex .Env1}} ${hp_blk1} {{printf "%#x" .Blocks}}
setexpr.b hp_f0 *{{hex (add .Env0 4)}}
setexpr.b hp_f1 *{{hex (add .Env1 4)}}
cp.b {{hex .Env0}} {{hex .Tmp}} 4; cp.b {{hex .Tmp}} {{hex (add .Env0 1)}} 4
cp.b {{hex .Env1}} {{hex .Tmp}} 4; cp.b {{hex .Tmp}} {{hex (add .Env1 1)}} 4
setenv hp_v0 0; setenv hp_v1 0
if env import -c {{hex (add .Env0 1)}} {{printf "%#x" .ImportSize}} hp_none; then setenv hp_v0 1; fi
if env import -c {{hex (add .Env1 1)}} {{printf "%#x" .ImportSize}} hp_none; then setenv hp_v1 1; fi
setenv hp_new1 0
if test 0x${hp_f1} -gt 0x${hp_f0}; then setenv hp_new1 1; fi
if test ${hp_f1} = 0 && test ${hp_f0} = ff; then setenv hp_new1 1; fi
if test ${hp_f1} = ff && test ${hp_f0} = 0; then setenv hp_new1 0; fi
setenv hp_cur none
if test ${hp_v0} = 1; then setenv hp_cur 0; fi
if test ${hp_v1} = 1; then if test ${hp_cur} = none || test ${hp_new1} = 1; then setenv hp_cur 1; fi; fi
setenv {{.OrderVar}}{{range .Slots}}; setenv {{.Left}}{{end}}
setenv hp_fl 0; setenv hp_wblk ${hp_blk0}
if test ${hp_cur} = 0; then env import -c {{hex (add .Env0 1)}} {{printf "%#x" .ImportSize}} {{.Vars}}; setenv hp_fl ${hp_f0}; setenv hp_wblk ${hp_blk1}; fi
if test ${hp_cur} = 1; then env import -c {{hex (add .Env1 1)}} {{printf "%#x" .ImportSize}} {{.Vars}}; setenv hp_fl ${hp_f1}; setenv hp_wblk ${hp_blk0}; fi
echo "HPBOOT env copy0=${hp_v0}/${hp_f0} copy1=${hp_v1}/${hp_f1} current=${hp_cur}"
test -n "${ {{- .OrderVar -}} }" || setenv {{.OrderVar}} "{{.DefaultOrder}}"
{{- range .Slots}}
test -n "${ {{- .Left -}} }" || setenv {{.Left}} {{$.Attempts}}
{{- end}}
setenv hp_slot
for hp_s in "${ {{- .OrderVar -}} }"; do
{{- range .Slots}}
  if test -z "${hp_slot}" && test "${hp_s}" = {{.Name}} && test ${ {{- .Left -}} } -gt 0; then setexpr {{.Left}} ${ {{- .Left -}} } - 1; setenv hp_slot {{.Name}}; setenv hp_part {{.Partition}}; fi
{{- end}}
done
if test -z "${hp_slot}"; then echo "HPBOOT no slot has attempts left: resetting the counters"; {{range .Slots}}setenv {{.Left}} {{$.Attempts}}; {{end}}fi
setexpr hp_fl ${hp_fl} + 1
setexpr hp_fl ${hp_fl} \& 0xff
env export -c -s {{printf "%#x" .ImportSize}} {{hex (add .Export 1)}} {{.Vars}}
cp.b {{hex (add .Export 1)}} {{hex .Tmp}} 4; cp.b {{hex .Tmp}} {{hex .Export}} 4
mw.b {{hex (add .Export 4)}} ${hp_fl}
echo "HPBOOT env-write block=${hp_wblk} flags=${hp_fl} order=${ {{- .OrderVar -}} }{{range .Slots}} {{.Name}}=${ {{- .Left -}} }{{end}}"
{{.Interface}} write {{hex .Export}} ${hp_wblk} {{printf "%#x" .Blocks}}
echo "HPBOOT env-written"
if test -z "${hp_slot}"; then reset; fi
echo "HPBOOT boot slot=${hp_slot}"
load {{.Interface}} {{.Device}}:${hp_part} ${kernel_addr_r} {{.Image}} || reset
load {{.Interface}} {{.Device}}:${hp_part} ${ramdisk_addr_r} {{.Initrd}} || reset
setenv bootargs "{{.Cmdline}} {{.CmdlineKey}}${hp_slot}"
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
echo "HPBOOT booti failed"
reset
`))

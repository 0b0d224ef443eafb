package storetest

import (
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/store"
)

func testSettings(t *testing.T, b Backend) {
	s := open(t, b)
	_, err := s.Setting(ctx, store.SettingMinSecurityVersion)
	wantErr(t, "Setting(unset)", err, store.ErrNotFound)
	v, ok, err := store.SettingUint(ctx, s, store.SettingMinSecurityVersion)
	noErr(t, "SettingUint(unset)", err)
	if ok || v != 0 {
		t.Fatalf("SettingUint(unset) = %d, %v, want 0, false", v, ok)
	}
	noErr(t, "SetSetting", s.SetSetting(ctx, store.SettingMinSecurityVersion, store.SettingUintString(7)))
	noErr(t, "SetSetting(overwrite)", s.SetSetting(ctx, store.SettingMinSecurityVersion, store.SettingUintString(1<<63)))
	v, ok, err = store.SettingUint(ctx, s, store.SettingMinSecurityVersion)
	noErr(t, "SettingUint", err)
	if !ok || v != 1<<63 {
		t.Fatalf("SettingUint = %d, %v, want %d, true", v, ok, uint64(1<<63))
	}
	noErr(t, "SetSetting", s.SetSetting(ctx, "display.name", "Floor 1 phones"))
	got, err := s.Setting(ctx, "display.name")
	noErr(t, "Setting", err)
	equal(t, "Setting(display.name)", got, "Floor 1 phones")
	_, _, err = store.SettingUint(ctx, s, "display.name")
	wantErr(t, "SettingUint(not a number)", err, store.ErrInvalid)

	before := snap(t, s)
	for _, tt := range []struct {
		key   store.SettingKey
		value string
	}{
		{"", "1"}, {"Upper", "1"}, {"1st", "1"}, {"a b", "1"}, {store.SettingKey(strings.Repeat("k", store.MaxNameLen+1)), "1"},
		{"x", ""}, {"x", "line\nbreak"}, {"x", strings.Repeat("v", store.MaxSettingValue+1)}, {"x", "caf\xc3\xa9"},
	} {
		wantErr(t, "SetSetting("+string(tt.key)+", "+tt.value+")", s.SetSetting(ctx, tt.key, tt.value), store.ErrInvalid)
	}
	unchanged(t, s, before, "refused settings")
	_, err = s.Setting(ctx, "Bad Key")
	wantErr(t, "Setting(bad key)", err, store.ErrInvalid)

	noErr(t, "DeleteSetting", s.DeleteSetting(ctx, "display.name"))
	_, err = s.Setting(ctx, "display.name")
	wantErr(t, "Setting(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteSetting(deleted)", s.DeleteSetting(ctx, "display.name"), store.ErrNotFound)
}

package storetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/store"
)

func testAllowList(t *testing.T, b Backend) {
	s := open(t, b)
	var entries []store.AllowEntry
	for i := range 5 {
		entries = append(entries, allowEntry(i))
	}
	res, err := s.ImportAllowList(ctx, entries)
	noErr(t, "ImportAllowList(5 new)", err)
	equal(t, "ImportAllowList(5 new)", res, store.ImportResult{Added: 5})

	got, err := s.LookupAllowed(ctx, ek(3))
	noErr(t, "LookupAllowed", err)
	want := allowEntry(3)
	want.ImportedAt = norm(want.ImportedAt)
	equal(t, "LookupAllowed(ek 3)", got, want)

	// Re-import: two identical, one moved group, one new serial, one new.
	again := []store.AllowEntry{allowEntry(0), allowEntry(1), allowEntry(2), allowEntry(3), allowEntry(9)}
	again[2].Group, again[2].ImportedAt = "floor-2", at(1)
	again[3].Serial, again[3].ImportedAt = "HP1-REPLACED", at(1)
	again[0].ImportedAt = at(1) // identical content: ImportedAt must stay
	res, err = s.ImportAllowList(ctx, again)
	noErr(t, "ImportAllowList(again)", err)
	equal(t, "ImportAllowList(again)", res, store.ImportResult{Added: 1, Updated: 2, Unchanged: 2})
	got, err = s.LookupAllowed(ctx, ek(0))
	noErr(t, "LookupAllowed", err)
	equal(t, "LookupAllowed(ek 0).ImportedAt", got.ImportedAt, norm(t0))
	got, err = s.LookupAllowed(ctx, ek(2))
	noErr(t, "LookupAllowed", err)
	equal(t, "LookupAllowed(ek 2).Group", got.Group, "floor-2")
	equal(t, "LookupAllowed(ek 2).ImportedAt", got.ImportedAt, norm(at(1)))
	// The old serial of entry 3 is free again.
	free := allowEntry(50)
	free.Serial = allowEntry(3).Serial
	res, err = s.ImportAllowList(ctx, []store.AllowEntry{free})
	noErr(t, "ImportAllowList(freed serial)", err)
	equal(t, "ImportAllowList(freed serial)", res, store.ImportResult{Added: 1})

	// Paging walks every entry once, in EK order.
	all := map[store.EKHash]bool{}
	var last string
	pages := 0
	for p := (store.PageRequest{Limit: 2}); ; {
		page, err := s.ListAllowed(ctx, p)
		pages++
		noErr(t, "ListAllowed", err)
		if len(page.Items) > 2 {
			t.Fatalf("ListAllowed(limit 2) returned %d items", len(page.Items))
		}
		for _, e := range page.Items {
			if e.EK.String() <= last {
				t.Fatalf("ListAllowed out of order: %s after %s", e.EK, last)
			}
			last = e.EK.String()
			all[e.EK] = true
		}
		if p.After = page.Next; p.After == "" {
			break
		}
	}
	if len(all) != 7 || pages != 4 {
		t.Fatalf("ListAllowed(limit 2) saw %d entries in %d pages, want 7 in 4", len(all), pages)
	}

	noErr(t, "RemoveAllowed", s.RemoveAllowed(ctx, ek(1)))
	_, err = s.LookupAllowed(ctx, ek(1))
	wantErr(t, "LookupAllowed(removed)", err, store.ErrNotFound)
	wantErr(t, "RemoveAllowed(removed)", s.RemoveAllowed(ctx, ek(1)), store.ErrNotFound)
	// Its serial is free for another TPM.
	moved := allowEntry(60)
	moved.Serial = allowEntry(1).Serial
	_, err = s.ImportAllowList(ctx, []store.AllowEntry{moved})
	noErr(t, "ImportAllowList(serial of removed entry)", err)
}

func testAllowListRefusals(t *testing.T, b Backend) {
	s := open(t, b)
	allow(t, s, 0, 1)
	before := snap(t, s)

	badSerial := allowEntry(7)
	badSerial.Serial = "HP1 007"
	longSerial := allowEntry(7)
	longSerial.Serial = strings.Repeat("9", store.MaxSerialLen+1)
	badModel := allowEntry(7)
	badModel.Model = "desk';drop"
	noGroup := allowEntry(7)
	noGroup.Group = ""
	zeroEK := allowEntry(7)
	zeroEK.EK = store.EKHash{}
	noTime := allowEntry(7)
	noTime.ImportedAt = noTime.ImportedAt.AddDate(-100, 0, 0)
	dashFirst := allowEntry(7)
	dashFirst.Group = "-x"
	takenSerial := allowEntry(7)
	takenSerial.Serial = allowEntry(0).Serial
	huge := make([]store.AllowEntry, store.MaxImportBatch+1)
	for i := range huge {
		huge[i] = allowEntry(100 + i)
	}
	tests := []struct {
		name    string
		entries []store.AllowEntry
		want    error
	}{
		{"empty batch", nil, store.ErrInvalid},
		{"space in serial", []store.AllowEntry{allowEntry(5), badSerial}, store.ErrInvalid},
		{"serial too long", []store.AllowEntry{longSerial}, store.ErrInvalid},
		{"quote in model", []store.AllowEntry{badModel}, store.ErrInvalid},
		{"empty group", []store.AllowEntry{noGroup}, store.ErrInvalid},
		{"group starting with a dash", []store.AllowEntry{dashFirst}, store.ErrInvalid},
		{"zero EK", []store.AllowEntry{zeroEK}, store.ErrInvalid},
		{"time out of range", []store.AllowEntry{noTime}, store.ErrInvalid},
		{"EK twice", []store.AllowEntry{allowEntry(5), allowEntry(5)}, store.ErrInvalid},
		{"serial twice in batch", []store.AllowEntry{allowEntry(5), func() store.AllowEntry {
			e := allowEntry(6)
			e.Serial = allowEntry(5).Serial
			return e
		}()}, store.ErrExists},
		// All or none: entry 5 is new and valid, but the batch fails.
		{"serial held by another EK", []store.AllowEntry{allowEntry(5), takenSerial}, store.ErrExists},
		{"batch too large", huge, store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.ImportAllowList(ctx, tt.entries)
			wantErr(t, fmt.Sprintf("ImportAllowList(%s)", tt.name), err, tt.want)
			equal(t, "ImportAllowList result on error", res, store.ImportResult{})
			unchanged(t, s, before, tt.name)
		})
	}
	// A serial move onto a serial held by another EK is refused too.
	swap := allowEntry(0)
	swap.Serial = allowEntry(1).Serial
	_, err := s.ImportAllowList(ctx, []store.AllowEntry{swap})
	wantErr(t, "ImportAllowList(serial moved onto another EK's)", err, store.ErrExists)
	unchanged(t, s, before, "serial move")

	_, err = s.LookupAllowed(ctx, ek(99))
	wantErr(t, "LookupAllowed(unknown)", err, store.ErrNotFound)
	wantErr(t, "RemoveAllowed(unknown)", s.RemoveAllowed(ctx, ek(99)), store.ErrNotFound)
	for _, p := range []store.PageRequest{{Limit: 0}, {Limit: store.MaxPageSize + 1}, {Limit: 1, After: "zz"},
		{Limit: 1, After: strings.Repeat("0", 64)}} {
		_, err := s.ListAllowed(ctx, p)
		wantErr(t, fmt.Sprintf("ListAllowed(%+v)", p), err, store.ErrInvalid)
	}
}

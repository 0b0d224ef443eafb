package weekly

import (
	"errors"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatalf("time %q: %v", s, err)
		}
		return tm
	}
	tests := []struct {
		window string
		at     time.Time
		want   bool
	}{
		// 2025-06-02 is a Monday.
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2025-06-02 02:30"), true},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2025-06-02 04:00"), false},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2025-06-01 02:30"), false},
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2025-06-02 02:30").UTC(), true},
		{"Mon-Fri 02:00-04:00 UTC", at("2025-06-02 02:30"), false},
		{"Sat,Sun 00:00-24:00 Europe/Berlin", at("2025-06-01 23:59"), true},
		{"Fri 22:00-06:00 Europe/Berlin", at("2025-06-07 05:00"), true},
		{"Fri 22:00-06:00 Europe/Berlin", at("2025-06-08 05:00"), false},
		{"Sat-Mon 01:00-02:00 Europe/Berlin", at("2025-06-01 01:30"), true},
	}
	for _, tt := range tests {
		w, err := Parse(tt.window)
		if err != nil {
			t.Fatalf("Parse(%q) error %v", tt.window, err)
		}
		if got := w.Contains(tt.at); got != tt.want {
			t.Errorf("Parse(%q).Contains(%v) = %v, want %v", tt.window, tt.at, got, tt.want)
		}
	}
	for _, bad := range []string{"", "Mon", "Mon 02:00-04:00", "Mon 02:00-04:00 Local", "Mon 02:00-02:00 UTC", "Xyz 02:00-04:00 UTC",
		"Mon 2:00-04:00 UTC", "Mon 02:00-25:00 UTC", "Mon 02:00-04:00 Mars/Olympus"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Window{Days: []time.Weekday{time.Monday}, Start: 60, End: 120, Location: time.UTC}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v", ok, err)
	}
	for _, w := range []Window{{}, {Days: []time.Weekday{1}, Start: 0, End: 0, Location: time.UTC},
		{Days: []time.Weekday{1}, Start: -1, End: 5, Location: time.UTC}, {Days: []time.Weekday{1}, Start: 1, End: 5},
		{Days: []time.Weekday{9}, Start: 1, End: 5, Location: time.UTC}, {Days: []time.Weekday{1}, Start: 1440, End: 5, Location: time.UTC}} {
		if err := w.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", w, err)
		}
	}
}

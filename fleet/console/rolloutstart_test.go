package console

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/api"
)

// TestRolloutFormRequest: the new-rollout form becomes the fleet API's
// request (a canary ring, then one ring per percentage); bad input is
// refused with a message and no request.
func TestRolloutFormRequest(t *testing.T) {
	good := rolloutForm{Kind: "config", Group: " floor-1 ", Config: "[media]\r\nrtp_port_min = 20000\r\n", Canary: "dev-a, dev-b",
		Rings: "50 100%", MaxFailure: "10", Deadline: "10m", ReportTimeout: "5m", Window: ""}
	tests := []struct {
		name string
		f    func(f *rolloutForm)
		want *api.RolloutRequest
		err  string
	}{
		{"config", func(*rolloutForm) {}, &api.RolloutRequest{Kind: "config", Group: "floor-1", Config: "[media]\nrtp_port_min = 20000\n",
			Rings:             []api.RolloutRing{{Name: "canary", Devices: []string{"dev-a", "dev-b"}}, {Name: "50%", Percent: 50}, {Name: "100%", Percent: 100}},
			MaxFailurePercent: 10, Deadline: "10m", ReportTimeout: "5m"}, ""},
		{"firmware ignores the document", func(f *rolloutForm) { f.Kind, f.Firmware, f.Canary, f.Rings = "firmware", " fw.raucb ", "", "100" },
			&api.RolloutRequest{Kind: "firmware", Group: "floor-1", Firmware: "fw.raucb", Rings: []api.RolloutRing{{Name: "100%", Percent: 100}},
				MaxFailurePercent: 10, Deadline: "10m", ReportTimeout: "5m"}, ""},
		{"one device", func(f *rolloutForm) { f.Group, f.Device, f.Canary, f.Rings = " ", " dev-a ", "", "100" },
			&api.RolloutRequest{Kind: "config", Device: "dev-a", Config: "[media]\nrtp_port_min = 20000\n", Rings: []api.RolloutRing{{Name: "100%", Percent: 100}},
				MaxFailurePercent: 10, Deadline: "10m", ReportTimeout: "5m"}, ""},
		{"a group and a device", func(f *rolloutForm) { f.Device = "dev-a" }, nil, "group or a device"},
		{"unknown kind", func(f *rolloutForm) { f.Kind = "script" }, nil, "kind"},
		{"percentage over 100", func(f *rolloutForm) { f.Rings = "150" }, nil, "percentage 1..100"},
		{"percentage not a number", func(f *rolloutForm) { f.Rings = "half" }, nil, "percentage 1..100"},
		{"negative max failures", func(f *rolloutForm) { f.MaxFailure = "-1" }, nil, "max failures"},
		{"no ring", func(f *rolloutForm) { f.Canary, f.Rings = "", "" }, nil, "rings"},
		{"nine rings", func(f *rolloutForm) { f.Rings = "10 20 30 40 50 60 70 80" }, nil, "rings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good
			tt.f(&f)
			got, err := f.request()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("request(%+v) error = %v, want one about %q", f, err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, *tt.want) {
				t.Fatalf("request(%+v) = %+v, %v; want %+v", f, got, err, *tt.want)
			}
		})
	}
}

package console

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// FindingLister lists the anomaly detector's findings, newest first
// (fleet/store's boltstore and pgstore).
type FindingLister interface {
	ListAnomalyFindings(ctx context.Context, q store.FindingQuery) (store.Page[store.AnomalyFinding], error)
}

// findingsShown bounds the findings a page lists.
const findingsShown = 50

// listFindings lists the newest findings, those naming device when it is
// set; none without a lister.
func (c *Console) listFindings(ctx context.Context, device store.DeviceID) ([]api.Finding, error) {
	if c.findings == nil {
		return nil, nil
	}
	p, err := c.findings.ListAnomalyFindings(ctx, store.FindingQuery{Device: device, Limit: findingsShown})
	if err != nil {
		return nil, fmt.Errorf("findings: %w", err)
	}
	out := make([]api.Finding, 0, len(p.Items))
	for _, f := range p.Items {
		var v api.Finding
		if err := json.Unmarshal(f.Data, &v); err != nil {
			return nil, fmt.Errorf("stored finding %d: %w", f.ID, err)
		}
		out = append(out, v)
	}
	return out, nil
}

package sim

import (
	"testing"
)

func TestEvaluation(t *testing.T) {
	s, err := Generate(DefaultConfig())
	if err != nil {
		t.Fatalf("Generate = %v", err)
	}
	res, _, err := Evaluate(s, EvalConfig(s))
	if err != nil {
		t.Fatalf("Evaluate = %v", err)
	}
	t.Logf("\n%s", res.Table())
}

package anomaly

import (
	"slices"
	"testing"
)

func TestLRU(t *testing.T) {
	l := newLRU[string, int](3)
	for i, k := range []string{"a", "b", "c"} {
		if _, _, ev := l.put(k, i); ev {
			t.Fatalf("put(%s) evicted below the cap", k)
		}
	}
	l.get("a") // a is now the most recent; b the least
	k, v, ev := l.put("d", 3)
	if !ev || k != "b" || v != 1 {
		t.Fatalf("put(d) evicted %q=%d (%v), want b=1", k, v, ev)
	}
	var order []string
	l.each(func(k string, _ int) { order = append(order, k) })
	if want := []string{"d", "a", "c"}; !slices.Equal(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
	l.remove("a")
	if _, ok := l.peek("a"); ok || l.len() != 2 {
		t.Fatalf("after remove(a): len %d, a present %v", l.len(), ok)
	}
	if !l.pushBack("e", 5) || l.pushBack("e", 6) || l.pushBack("f", 7) {
		t.Fatalf("pushBack: want e added, e again refused, f refused at the cap")
	}
	if k, _, _ := l.oldest(); k != "e" {
		t.Fatalf("oldest = %q, want e", k)
	}
}

func TestWindowDistinct(t *testing.T) {
	w := newWindow(4)
	// A flood from one key holds one entry: the others stay counted.
	for i := range 100 {
		w.add("flood", int64(1000+i))
	}
	w.add("b", 1100)
	w.add("c", 1101)
	if w.count() != 3 {
		t.Fatalf("count = %d, want 3", w.count())
	}
	w.expire(1099)
	if w.count() != 2 {
		t.Fatalf("count after expiring 1099 = %d, want 2 (b and c)", w.count())
	}
	// A late time never moves a key back.
	w.add("c", 5)
	w.expire(1100)
	if w.count() != 1 {
		t.Fatalf("count after expiring 1100 = %d, want 1 (c at 1101)", w.count())
	}
}

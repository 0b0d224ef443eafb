package anomaly

// lru is a map bounded to cap entries that forgets the least recently
// touched first. Not safe for concurrent use (the Detector's mutex guards
// it).
type lru[K comparable, V any] struct {
	m    map[K]*lruNode[K, V]
	head *lruNode[K, V] // most recently touched; nil when empty
	tail *lruNode[K, V] // least recently touched
	cap  int
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruNode[K, V]
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	return &lru[K, V]{m: make(map[K]*lruNode[K, V]), cap: capacity}
}

func (l *lru[K, V]) len() int { return len(l.m) }

// get returns the value and marks it most recently used.
func (l *lru[K, V]) get(k K) (V, bool) {
	n, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.toFront(n)
	return n.val, true
}

// peek returns the value without touching it.
func (l *lru[K, V]) peek(k K) (V, bool) {
	n, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	return n.val, true
}

// put sets k's value and marks it most recently used. When that grows the
// map past its cap, the least recently used entry goes and is returned.
func (l *lru[K, V]) put(k K, v V) (evictedKey K, evicted V, didEvict bool) {
	if n, ok := l.m[k]; ok {
		n.val = v
		l.toFront(n)
		return evictedKey, evicted, false
	}
	n := &lruNode[K, V]{key: k, val: v}
	l.m[k] = n
	l.pushFront(n)
	if len(l.m) > l.cap {
		t := l.tail
		l.unlink(t)
		delete(l.m, t.key)
		return t.key, t.val, true
	}
	return evictedKey, evicted, false
}

// pushBack adds k as the least recently used entry (for restoring a
// saved order, oldest last). It does nothing when the map is full or k is
// present.
func (l *lru[K, V]) pushBack(k K, v V) bool {
	if _, ok := l.m[k]; ok || len(l.m) >= l.cap {
		return false
	}
	n := &lruNode[K, V]{key: k, val: v}
	l.m[k] = n
	n.prev = l.tail
	if l.tail != nil {
		l.tail.next = n
	}
	l.tail = n
	if l.head == nil {
		l.head = n
	}
	return true
}

// oldest returns the least recently used entry.
func (l *lru[K, V]) oldest() (K, V, bool) {
	if l.tail == nil {
		var k K
		var v V
		return k, v, false
	}
	return l.tail.key, l.tail.val, true
}

func (l *lru[K, V]) remove(k K) {
	if n, ok := l.m[k]; ok {
		l.unlink(n)
		delete(l.m, k)
	}
}

// each calls f from the most to the least recently used entry.
func (l *lru[K, V]) each(f func(K, V)) {
	for n := l.head; n != nil; n = n.next {
		f(n.key, n.val)
	}
}

func (l *lru[K, V]) toFront(n *lruNode[K, V]) {
	if l.head == n {
		return
	}
	l.unlink(n)
	l.pushFront(n)
}

func (l *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev = nil
	n.next = l.head
	if l.head != nil {
		l.head.prev = n
	}
	l.head = n
	if l.tail == nil {
		l.tail = n
	}
}

func (l *lru[K, V]) unlink(n *lruNode[K, V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

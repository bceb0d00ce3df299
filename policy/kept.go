package policy

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// kept holds decisions already made, by what they were made on, for as
// long as the compiled policies that made them. It holds about max of
// them: past that it forgets them all and starts again, so that keys
// from callers' free text (purposes, legal bases) cannot grow it without
// end. (A few callers racing at the bound may each add one more.)
type kept[K comparable, V any] struct {
	m   sync.Map // K → V
	n   atomic.Int64
	max int64
}

func (k *kept[K, V]) get(key K) (V, bool) {
	v, ok := k.m.Load(key)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

func (k *kept[K, V]) put(key K, v V) {
	if k.n.Load() >= k.max {
		k.m.Clear()
		k.n.Store(0)
	}
	if _, loaded := k.m.LoadOrStore(key, v); !loaded {
		k.n.Add(1)
	}
}

// len is about how many decisions are kept.
func (k *kept[K, V]) len() int64 { return k.n.Load() }

// appendPrefixed appends s with its length and a colon before it, so
// that strings written one after another cannot run together.
func appendPrefixed(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

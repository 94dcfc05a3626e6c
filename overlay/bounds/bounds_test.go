package bounds

import (
	"slices"
	"testing"
	"time"
)

func TestIdleLinks(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	now := at(100)
	fresh := func(p string) bool { return p == "f" }
	out := func(p string, s int) Link[string] { return Link[string]{p, at(s), true} }
	in := func(p string, s int) Link[string] { return Link[string]{p, at(s), false} }
	tests := []struct {
		name  string
		links []Link[string]
		min   int
		maxIn int
		want  []string
	}{
		{"at min links", []Link[string]{out("a", 0), out("b", 0), out("c", 0)}, 3, 6, nil},
		{"fresh and young stay, oldest idle first", []Link[string]{out("f", 0), out("y", 90), out("b", 20), out("a", 10), out("c", 30)}, 3, 6, []string{"a", "b"}},
		{"inbound kept up to maxIn, newest kept", []Link[string]{in("i1", 10), in("i2", 20), in("i3", 30), out("f", 0)}, 1, 1, []string{"i1", "i2"}},
		{"outbound before inbound extras", []Link[string]{in("i1", 1), in("i2", 2), out("o", 50)}, 0, 1, []string{"o", "i1"}},
		{"min links stops closing", []Link[string]{out("a", 1), out("b", 2), out("c", 3), out("d", 4)}, 2, 6, []string{"a", "b"}},
	}
	for _, tt := range tests {
		got := IdleLinks(tt.links, fresh, now, 30*time.Second, tt.min, tt.maxIn)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := IdleLinks([]Link[string]{out("a", 0), out("b", 0), out("c", 0), out("d", 0)}, fresh, now, 0, 1, 1); got != nil {
		t.Errorf("idle 0 closed %v", got)
	}
}

func TestStaleSeeds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ls := []Link[string]{{Peer: "old", Opened: t0}, {Peer: "new", Opened: t0.Add(2 * time.Second)}, {Peer: "mid", Opened: t0.Add(time.Second)}, {Peer: "talk", Opened: t0}}
	fresh := func(p string) bool { return p == "talk" }
	if got := StaleSeeds(ls, fresh, 1, 3); !slices.Equal(got, []string{"new", "mid"}) {
		t.Fatalf("StaleSeeds = %v, want the two newest stale links [new mid]", got)
	}
	if got := StaleSeeds(ls, fresh, 3, 3); len(got) != 0 {
		t.Fatalf("enough fresh neighbours, yet %v", got)
	}
	if got := StaleSeeds(ls[:1], fresh, 0, 3); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("fewer links than missing: %v", got)
	}
}

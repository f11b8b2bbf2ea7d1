package keys

import (
	"net/netip"
	"testing"
	"time"
)

func TestSource(t *testing.T) {
	for _, tc := range []struct {
		source string
		allow  []string
		deny   []string
	}{
		{"*", []string{"1.2.3.4", "::1"}, nil},
		{"178.1.1.*", []string{"178.1.1.0", "178.1.1.255"}, []string{"178.1.2.1", "::1"}},
		{"10.*.*.1", []string{"10.9.8.1"}, []string{"10.9.8.2"}},
		{"87.1.1.2, 10.0.0.0/8", []string{"87.1.1.2", "10.255.0.1", "::ffff:10.1.1.1"}, []string{"87.1.1.3", "11.0.0.1"}},
		{"2001:db8::/32,::1", []string{"2001:db8::5", "::1"}, []string{"2001:db9::1", "127.0.0.1"}},
	} {
		s, err := ParseSource(tc.source)
		if err != nil {
			t.Fatalf("%q: %v", tc.source, err)
		}
		for _, a := range tc.allow {
			if !s.Allows(netip.MustParseAddr(a)) {
				t.Errorf("%q should allow %s", tc.source, a)
			}
		}
		for _, a := range tc.deny {
			if s.Allows(netip.MustParseAddr(a)) {
				t.Errorf("%q should deny %s", tc.source, a)
			}
		}
	}
	for _, bad := range []string{"", " , ", "1.2.3", "300.1.1.*", "1.2.*", "10.0.0.0/40", "host.example", "1.2.3.4x"} {
		if _, err := ParseSource(bad); err == nil {
			t.Errorf("ParseSource(%q) accepted", bad)
		}
	}
}

func TestPasswordsCache(t *testing.T) {
	p := NewPasswords(4)
	h, err := p.Hash("5f4dcc3b5aa765d61d8327deb882cf99")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verify(1, h, "5F4DCC3B5AA765D61D8327DEB882CF99") || !p.Verify(1, h, "5f4dcc3b5aa765d61d8327deb882cf99") {
		t.Fatal("right password refused")
	}
	if p.Verify(1, h, "00000000000000000000000000000000") {
		t.Fatal("wrong password accepted (from the cache?)")
	}
	h2, _ := p.Hash("00000000000000000000000000000000")
	if p.Verify(1, h2, "5f4dcc3b5aa765d61d8327deb882cf99") {
		t.Fatal("the cache outlived a password change")
	}
}

func TestLimiter(t *testing.T) {
	l := &Limiter{Max: 2, Window: time.Minute}
	t0 := time.Unix(1000, 0)
	if !l.Allow("a", t0) || !l.Allow("a", t0.Add(time.Second)) || l.Allow("a", t0.Add(2*time.Second)) {
		t.Fatal("the third event within the window was allowed")
	}
	if !l.Allow("b", t0) {
		t.Fatal("another key was limited")
	}
	if !l.Allow("a", t0.Add(61*time.Second)) {
		t.Fatal("an event after the window was refused")
	}
}

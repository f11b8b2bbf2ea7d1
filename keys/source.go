package keys

import (
	"fmt"
	"net/netip"
	"strings"
)

// Source is a parsed key `source`: the addresses a key may be used from.
type Source struct {
	any      bool
	prefixes []netip.Prefix
	octets   [][4]int // IPv4 per-octet masks; -1 stands for `*`
}

// ParseSource reads a comma list of IPv4/IPv6 addresses, CIDR prefixes, per-octet `*`
// masks (178.1.1.*) or `*` for any address.
func ParseSource(s string) (Source, error) {
	var src Source
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case item == "*":
			src.any = true
		case strings.Contains(item, "/"):
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return Source{}, fmt.Errorf("source %q: %v", item, err)
			}
			src.prefixes = append(src.prefixes, p.Masked())
		case strings.Contains(item, "*"):
			parts := strings.Split(item, ".")
			if len(parts) != 4 {
				return Source{}, fmt.Errorf("source %q: a mask needs four octets", item)
			}
			var o [4]int
			for i, p := range parts {
				if p == "*" {
					o[i] = -1
					continue
				}
				a, err := netip.ParseAddr("0.0.0." + p)
				if err != nil || len(p) > 3 {
					return Source{}, fmt.Errorf("source %q: bad octet %q", item, p)
				}
				o[i] = int(a.As4()[3])
			}
			src.octets = append(src.octets, o)
		default:
			a, err := netip.ParseAddr(item)
			if err != nil {
				return Source{}, fmt.Errorf("source %q: %v", item, err)
			}
			a = a.Unmap()
			src.prefixes = append(src.prefixes, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	if !src.any && len(src.prefixes) == 0 && len(src.octets) == 0 {
		return Source{}, fmt.Errorf("source %q names no address", s)
	}
	return src, nil
}

// Allows reports whether addr may use the key.
func (s Source) Allows(addr netip.Addr) bool {
	if s.any {
		return true
	}
	addr = addr.Unmap()
	for _, p := range s.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	if addr.Is4() {
		b := addr.As4()
	masks:
		for _, o := range s.octets {
			for i := range o {
				if o[i] >= 0 && o[i] != int(b[i]) {
					continue masks
				}
			}
			return true
		}
	}
	return false
}

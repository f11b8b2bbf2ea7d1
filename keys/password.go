package keys

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Passwords arrive as md5 hex of the web password (the reference's wire format); the
// database keeps only a bcrypt hash of that value. Verifying bcrypt costs tens of
// milliseconds by design, so verified credentials are remembered for a short while.
type Passwords struct {
	Cost int           // bcrypt cost; bcrypt.DefaultCost in production
	TTL  time.Duration // how long a verified credential is trusted

	mu       sync.Mutex
	verified map[int64]verifiedCredential
}

type verifiedCredential struct {
	hash    string   // the stored hash it was checked against: a password change invalidates
	digest  [32]byte // sha256 of the presented md5, so the cache holds no usable secret
	expires time.Time
}

// NewPasswords returns a Passwords with the given bcrypt cost and a one-minute cache.
func NewPasswords(cost int) *Passwords {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	return &Passwords{Cost: cost, TTL: time.Minute, verified: map[int64]verifiedCredential{}}
}

// IsMD5Hex reports whether s looks like an md5 hex digest.
func IsMD5Hex(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Hash returns the stored form of an md5-hex password.
func (p *Passwords) Hash(md5hex string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(strings.ToLower(md5hex)), p.Cost)
	return string(h), err
}

// Verify checks a presented md5-hex password against the stored hash of user id.
func (p *Passwords) Verify(id int64, storedHash, md5hex string) bool {
	md5hex = strings.ToLower(md5hex)
	digest := sha256.Sum256([]byte(md5hex))
	now := time.Now()
	p.mu.Lock()
	c, ok := p.verified[id]
	p.mu.Unlock()
	if ok && c.hash == storedHash && now.Before(c.expires) &&
		subtle.ConstantTimeCompare(c.digest[:], digest[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(storedHash), []byte(md5hex)) != nil {
		return false
	}
	p.mu.Lock()
	if len(p.verified) > 100_000 { // bound memory: start over rather than grow forever
		p.verified = map[int64]verifiedCredential{}
	}
	p.verified[id] = verifiedCredential{hash: storedHash, digest: digest, expires: now.Add(p.TTL)}
	p.mu.Unlock()
	return true
}

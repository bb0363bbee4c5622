package wecomauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/patrickmn/go-cache"

	"github.com/wecomgate/wecomgate/module/internal/cluster"
)

// The upstream assertion lets a backend verify who is calling even if
// someone reaches it around the gateway: a short-lived ES256 JWT in
// X-WeCom-Assertion, verifiable with the keys at {endpoints}/jwks.json.
//
// An assertion is worth something only where it was meant to go, so
// everything that scopes it comes from the configuration, never from the
// request: the audience is configured, each audience has a signing key of
// its own (one site's assertion never verifies with another site's keys),
// and the claims name the method and path it was issued for.
const (
	headerAssertion     = "X-WeCom-Assertion"
	assertionKeyPrefix  = "wecomgate/assertion/"
	assertionIssuer     = "wecomgate"
	defaultAssertionTTL = time.Minute
	// maxCachedAssertions bounds the reuse cache: its keys include the
	// path, which a signed-in client chooses freely; maxCachedTarget keeps
	// long paths and queries out of it, so its bytes are bounded too.
	maxCachedAssertions = 1 << 14
	maxCachedTarget     = 512
)

// AssertionConfig turns on the signed upstream assertion.
type AssertionConfig struct {
	// The JWT's aud: the name the backend checks, e.g. its own host
	// name. Required.
	Audience string `json:"audience,omitempty"`
	// Lifetime of an assertion. Default: 1m.
	TTL caddy.Duration `json:"ttl,omitempty"`
}

type asserter struct {
	audience string
	ttl      time.Duration
	signer   jose.Signer
	jwks     []byte
	// Signing costs tens of microseconds, so an assertion is reused for
	// half its lifetime for the same session, identity and audience.
	issued *cache.Cache
}

// assertionClaims are the JWT's claims besides the registered ones.
// Method, Path and Query are the request's as wecom_auth saw it (before
// handle_path or a rewrite inside the site's blocks): a backend compares
// them with the request it got, so an assertion is not replayed on another
// path, or on another action of a backend that routes on the query
// (index.php?r=…).
type assertionClaims struct {
	Method     string `json:"method"`
	Path       string `json:"path"`
	Query      string `json:"query,omitempty"`
	CorpID     string `json:"corpid,omitempty"`
	Corp       string `json:"corp,omitempty"`
	Name       string `json:"name,omitempty"`
	Department string `json:"department,omitempty"`
	Review     bool   `json:"review,omitempty"`
}

// validate checks what Provision cannot default.
func (cfg *AssertionConfig) validate() error {
	if strings.TrimSpace(cfg.Audience) == "" {
		return fmt.Errorf("assertion: an audience is required (the name your backend checks as the JWT's aud, e.g. its host name)")
	}
	return nil
}

// assertionKeyName is where the signing key of an audience is kept. Sites
// sharing storage share a key only if they share the audience.
func assertionKeyName(audience string) string {
	sum := sha256.Sum256([]byte(audience))
	return assertionKeyPrefix + hex.EncodeToString(sum[:12]) + ".pem"
}

func newAsserter(ctx context.Context, cl *cluster.Member, cfg *AssertionConfig) (*asserter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	name := assertionKeyName(cfg.Audience)
	pemBytes, err := cl.Secret(ctx, name, newAssertionKey)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("stored %s is not PEM", name)
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("stored %s: %w", name, err)
	}
	return newAsserterWithKey(cfg, key)
}

func newAsserterWithKey(cfg *AssertionConfig, key *ecdsa.PrivateKey) (*asserter, error) {
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"},
	}})
	if err != nil {
		return nil, err
	}
	a := &asserter{audience: cfg.Audience, ttl: time.Duration(cfg.TTL), signer: signer, jwks: jwks}
	if a.ttl <= 0 {
		a.ttl = defaultAssertionTTL
	}
	a.issued = cache.New(a.ttl/2, a.ttl)
	return a, nil
}

func newAssertionKey() []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("wecomauth: no randomness: " + err.Error())
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// sign returns the assertion for an admitted request to method, path
// (escaped, as sent) and raw query.
func (a *asserter) sign(method, path, query string, id *identity, now time.Time) (string, error) {
	cacheable := len(path)+len(query) <= maxCachedTarget
	key := string(id.sid[:]) + "\x00" + method + "\x00" + path + "\x00" + query + "\x00" + id.Name + "\x00" + id.Departments
	if cacheable {
		if v, ok := a.issued.Get(key); ok {
			return v.(string), nil
		}
	}
	std := jwt.Claims{
		Issuer:   assertionIssuer,
		Subject:  id.UserID,
		Audience: jwt.Audience{a.audience},
		IssuedAt: jwt.NewNumericDate(now),
		// A little leeway before now for clocks that run behind.
		NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
		Expiry:    jwt.NewNumericDate(now.Add(a.ttl)),
	}
	extra := assertionClaims{Method: method, Path: path, Query: query, CorpID: id.CorpID, Corp: id.Corp, Name: id.Name, Department: id.Departments, Review: id.Review}
	tok, err := jwt.Signed(a.signer).Claims(std).Claims(extra).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing assertion: %w", err)
	}
	if cacheable && a.issued.ItemCount() < maxCachedAssertions {
		a.issued.SetDefault(key, tok)
	}
	return tok, nil
}

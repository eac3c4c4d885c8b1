package oauth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// The facade keeps no session state: what it must remember between the authorization request, Dex's
// answer and the token request travels sealed (AES-GCM) in the state it gives Dex and in the code it
// gives the client. Any replica of the tenant's server opens them; nobody else can read or forge them.
type sealer struct{ aead cipher.AEAD }

func newSealer(secret string) (*sealer, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, "tracekit oauth facade: sealed state and codes", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// What a sealed value is for; bound as additional data, so a state cannot pass for a code.
const (
	kindState = "state"
	kindCode  = "code"
)

// grant is what a sealed state or code carries.
type grant struct {
	Expiry      int64  `json:"x"`
	ClientID    string `json:"c"`
	RedirectURI string `json:"r"`
	// RedirectExplicit records that the client sent redirect_uri, which obliges it to send the same at
	// the token endpoint (RFC 6749 §4.1.3).
	RedirectExplicit bool `json:"e,omitempty"`
	// ClientState is the client's state, returned to it with the code (in the sealed state only).
	ClientState string `json:"s,omitempty"`
	// DexCode is Dex's authorization code (in the sealed code only).
	DexCode string `json:"d,omitempty"`
}

var errSealed = errors.New("invalid or expired")

func (s *sealer) seal(kind string, g grant, ttl time.Duration, now time.Time) string {
	g.Expiry = now.Add(ttl).Unix()
	plain, _ := json.Marshal(g)
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(kind)))
}

func (s *sealer) open(kind, sealed string, now time.Time) (grant, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return grant{}, errSealed
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(kind))
	if err != nil {
		return grant{}, errSealed
	}
	var g grant
	if json.Unmarshal(plain, &g) != nil || now.Unix() >= g.Expiry {
		return grant{}, errSealed
	}
	return g, nil
}

package datastore

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/base64"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/k3scert/k3scert/internal/source"
	"sigs.k8s.io/yaml"
)

// encPrefix starts every value written by an encrypting provider:
// "k8s:enc:<provider>:v1:<key name>:" (kms: "k8s:enc:kms:v1|v2:<name>:").
const encPrefix = "k8s:enc:"

// Envelope is the parsed prefix of an encrypted value.
type Envelope struct {
	Provider string // aescbc, aesgcm, secretbox, kms
	Version  string // v1 (v2 for kms v2)
	KeyName  string
}

// ParseEnvelope reports whether b is an encrypted value and parses its
// prefix. ok is false for plaintext (identity) values.
func ParseEnvelope(b []byte) (env Envelope, body []byte, ok bool, err error) {
	if !bytes.HasPrefix(b, []byte(encPrefix)) {
		return Envelope{}, b, false, nil
	}
	rest := b[len(encPrefix):]
	parts := bytes.SplitN(rest, []byte(":"), 4)
	if len(parts) < 4 {
		return Envelope{}, nil, true, fmt.Errorf("%w: malformed prefix %q", ErrEncrypted, clip(b, 48))
	}
	env = Envelope{Provider: string(parts[0]), Version: string(parts[1]), KeyName: string(parts[2])}
	return env, parts[3], true, nil
}

func clip(b []byte, n int) []byte { return b[:min(len(b), n)] }

// Encryption decrypts (and encrypts) Secret values with the keys of an
// EncryptionConfiguration, as kube-apiserver would.
type Encryption struct {
	Path  string
	read  map[string]transformer // full prefix -> transformer
	write *writeTransformer      // first provider; nil = identity
	kms   []string               // kms provider names (not usable offline)
}

type writeTransformer struct {
	prefix string
	t      transformer
}

// LoadEncryption reads an EncryptionConfiguration (server/cred/
// encryption-config.json, JSON or YAML) and builds the transformers for
// secrets. A missing file is not an error: it returns nil, nil (K3s without
// --secrets-encryption).
func LoadEncryption(path string) (*Encryption, error) {
	b, err := source.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("encryption config: %w", err)
	}
	e, err := ParseEncryption(b)
	if err != nil {
		return nil, fmt.Errorf("encryption config %s: %w", path, err)
	}
	e.Path = path
	return e, nil
}

// ParseEncryption builds the transformers for secrets from an
// EncryptionConfiguration document.
func ParseEncryption(b []byte) (*Encryption, error) {
	var cfg encryptionConfiguration
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, err
	}
	e := &Encryption{read: map[string]transformer{}}
	first := true
	for _, rc := range cfg.Resources {
		if !coversSecrets(rc.Resources) {
			continue
		}
		for _, p := range rc.Providers {
			wt, err := e.add(p)
			if err != nil {
				return nil, err
			}
			if first {
				e.write = wt
				first = false
			}
		}
		break // kube-apiserver uses the first resource entry that matches
	}
	return e, nil
}

func coversSecrets(rs []string) bool {
	for _, r := range rs {
		if r == "secrets" || r == "*.*" || r == "*." {
			return true
		}
	}
	return false
}

// add registers one provider's keys for reading and returns the
// transformer it would write with (its first key); nil for identity.
func (e *Encryption) add(p providerConfiguration) (*writeTransformer, error) {
	var w *writeTransformer
	keep := func(prefix string, t transformer) {
		e.read[prefix] = t
		if w == nil {
			w = &writeTransformer{prefix: prefix, t: t}
		}
	}
	switch {
	case p.AESCBC != nil:
		for _, k := range p.AESCBC.Keys {
			key, err := decodeKey("aescbc", k)
			if err != nil {
				return nil, err
			}
			if len(key) != 32 {
				return nil, fmt.Errorf("aescbc key %q: %d bytes, want 32", k.Name, len(key))
			}
			block, err := aes.NewCipher(key)
			if err != nil {
				return nil, fmt.Errorf("aescbc key %q: %w", k.Name, err)
			}
			keep("k8s:enc:aescbc:v1:"+k.Name+":", cbcTransformer{block})
		}
	case p.AESGCM != nil:
		for _, k := range p.AESGCM.Keys {
			key, err := decodeKey("aesgcm", k)
			if err != nil {
				return nil, err
			}
			block, err := aes.NewCipher(key)
			if err != nil {
				return nil, fmt.Errorf("aesgcm key %q: %w", k.Name, err)
			}
			t, err := newGCMTransformer(block)
			if err != nil {
				return nil, fmt.Errorf("aesgcm key %q: %w", k.Name, err)
			}
			keep("k8s:enc:aesgcm:v1:"+k.Name+":", t)
		}
	case p.Secretbox != nil:
		for _, k := range p.Secretbox.Keys {
			key, err := decodeKey("secretbox", k)
			if err != nil {
				return nil, err
			}
			if len(key) != 32 {
				return nil, fmt.Errorf("secretbox key %q: %d bytes, want 32", k.Name, len(key))
			}
			keep("k8s:enc:secretbox:v1:"+k.Name+":", secretboxTransformer{[32]byte(key)})
		}
	case p.KMS != nil:
		e.kms = append(e.kms, p.KMS.Name)
		// Writing would need the plugin: k3scert cannot write with kms.
		return &writeTransformer{prefix: "kms"}, nil
	case p.Identity != nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("provider with no known type (want aescbc, aesgcm, secretbox, identity or kms)")
	}
	return w, nil
}

func decodeKey(provider string, k encryptionKey) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil {
		return nil, fmt.Errorf("%s key %q: secret is not base64: %w", provider, k.Name, err)
	}
	return b, nil
}

// Decrypt returns the plaintext of a stored value. Plaintext values pass
// through. key is the datastore key: kube-apiserver authenticates it as
// additional data. The error says precisely why a value cannot be
// decrypted.
func (e *Encryption) Decrypt(ctx context.Context, key string, b []byte) ([]byte, error) {
	env, _, ok, err := ParseEnvelope(b)
	if err != nil || !ok {
		return b, err
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %s is encrypted with %s key %q but there is no encryption config (server/cred/encryption-config.json)",
			ErrEncrypted, key, env.Provider, env.KeyName)
	}
	if env.Provider == "kms" {
		return nil, fmt.Errorf("%w: %s is encrypted by KMS plugin %q (kms %s): k3scert cannot reach KMS plugins offline; read it through the API",
			ErrEncrypted, key, env.KeyName, env.Version)
	}
	prefix := encPrefix + env.Provider + ":" + env.Version + ":" + env.KeyName + ":"
	if t, ok := e.read[prefix]; ok {
		out, err := transformFrom(ctx, env.Provider, t, b[len(prefix):], key)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s key %q in %s does not decrypt it: %v", ErrEncrypted, key, env.Provider, env.KeyName, e.where(), err)
		}
		return out, nil
	}
	switch env.Provider {
	case "aescbc", "aesgcm", "secretbox":
		return nil, fmt.Errorf("%w: %s is encrypted with %s key %q, which %s does not have (keys: %s)",
			ErrEncrypted, key, env.Provider, env.KeyName, e.where(), strings.Join(e.KeyNames(), ", "))
	}
	return nil, fmt.Errorf("%w: %s uses unknown provider %q (k3scert knows aescbc, aesgcm, secretbox)", ErrEncrypted, key, env.Provider)
}

// Encrypt transforms a plaintext value for storage with the provider
// kube-apiserver writes with (the first one). Identity returns b as is.
func (e *Encryption) Encrypt(ctx context.Context, key string, b []byte) ([]byte, error) {
	if e == nil || e.write == nil {
		return b, nil
	}
	if e.write.t == nil {
		return nil, fmt.Errorf("%s: the write provider is KMS; k3scert cannot encrypt with it (use the API)", e.where())
	}
	out, err := e.write.t.toStorage(b, []byte(key))
	if err != nil {
		return nil, err
	}
	return append([]byte(e.write.prefix), out...), nil
}

// KeyNames lists the usable key prefixes (never key material).
func (e *Encryption) KeyNames() []string {
	var out []string
	for p := range e.read {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(p, encPrefix), ":"))
	}
	for _, k := range e.kms {
		out = append(out, "kms:"+k)
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	sort.Strings(out)
	return out
}

func (e *Encryption) where() string {
	if e.Path != "" {
		return e.Path
	}
	return "the encryption config"
}

// transformFrom runs a provider's decryption on untrusted bytes. Lengths
// are checked before any slicing (apiserver's own aescbc transformer panics
// on a value exactly one block long, found by FuzzDecrypt), and any panic
// still becomes an error.
func transformFrom(_ context.Context, provider string, t transformer, body []byte, key string) (out []byte, err error) {
	if provider == "aescbc" && (len(body) < 2*aes.BlockSize || len(body)%aes.BlockSize != 0) {
		return nil, fmt.Errorf("ciphertext of %d bytes is not IV + whole AES blocks", len(body))
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%s transformer failed on malformed data: %v", provider, r)
		}
	}()
	return t.fromStorage(body, []byte(key))
}

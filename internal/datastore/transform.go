package datastore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
)

// The EncryptionConfiguration (apiserver.config.k8s.io/v1) and the three
// local providers' storage formats, as kube-apiserver v0.37.2 defines them
// (k8s.io/apiserver pkg/apis/apiserver/v1/types_encryption.go and
// pkg/storage/value/encrypt/{aes/aes.go,secretbox/secretbox.go}). They are
// written here instead of linking k8s.io/apiserver, whose storage/value
// package registers its metrics in component-base's legacy Prometheus
// registry at start-up (the heaviest package init of the binary). The
// tests encrypt with apiserver's own transformers and decrypt here, and
// the other way round.

// encryptionConfiguration is apiserver's v1 EncryptionConfiguration, with
// every field it has, so that UnmarshalStrict still rejects typos.
type encryptionConfiguration struct {
	Kind       string                  `json:"kind,omitempty"`
	APIVersion string                  `json:"apiVersion,omitempty"`
	Resources  []resourceConfiguration `json:"resources"`
}

type resourceConfiguration struct {
	Resources []string                `json:"resources"`
	Providers []providerConfiguration `json:"providers"`
}

type providerConfiguration struct {
	AESGCM    *keysConfiguration `json:"aesgcm,omitempty"`
	AESCBC    *keysConfiguration `json:"aescbc,omitempty"`
	Secretbox *keysConfiguration `json:"secretbox,omitempty"`
	Identity  *struct{}          `json:"identity,omitempty"`
	KMS       *kmsConfiguration  `json:"kms,omitempty"`
}

type keysConfiguration struct {
	Keys []encryptionKey `json:"keys"`
}

type encryptionKey struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

type kmsConfiguration struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Name       string `json:"name"`
	CacheSize  *int32 `json:"cachesize,omitempty"`
	Endpoint   string `json:"endpoint"`
	Timeout    string `json:"timeout,omitempty"` // a duration ("3s"); not used offline
}

// transformer is one key of one provider. additional is the datastore key,
// which AES-GCM authenticates (apiserver's value.DefaultContext).
type transformer interface {
	fromStorage(data, additional []byte) ([]byte, error)
	toStorage(data, additional []byte) ([]byte, error)
}

// cbcTransformer is aescbc: a random 16-byte IV, then AES-CBC with PKCS#7
// padding (aes.go cbc.TransformFromStorage / TransformToStorage). No
// additional data.
type cbcTransformer struct{ block cipher.Block }

func (t cbcTransformer) fromStorage(data, _ []byte) ([]byte, error) {
	bs := aes.BlockSize
	if len(data) < bs {
		return nil, errors.New("the stored data was shorter than the required size")
	}
	iv, data := data[:bs], data[bs:]
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, errors.New("the stored data is not a multiple of the block size")
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(t.block, iv).CryptBlocks(out, data)
	c := out[len(out)-1]
	pad := int(c)
	if pad == 0 || pad > len(out) {
		return nil, errors.New("invalid PKCS7 data (empty or not padded)")
	}
	for _, b := range out[len(out)-pad:] {
		if b != c {
			return nil, errors.New("invalid padding on input")
		}
	}
	return out[:len(out)-pad], nil
}

func (t cbcTransformer) toStorage(data, _ []byte) ([]byte, error) {
	bs := aes.BlockSize
	pad := bs - len(data)%bs
	out := make([]byte, bs+len(data)+pad)
	if _, err := rand.Read(out[:bs]); err != nil {
		return nil, errors.New("unable to read sufficient random bytes")
	}
	copy(out[bs:], data)
	copy(out[bs+len(data):], bytes.Repeat([]byte{byte(pad)}, pad))
	cipher.NewCBCEncrypter(t.block, out[:bs]).CryptBlocks(out[bs:], out[bs:])
	return out, nil
}

// gcmTransformer is aesgcm: a random 12-byte nonce, then AES-GCM sealed
// with the datastore key as additional data (aes.go gcm).
type gcmTransformer struct{ aead cipher.AEAD }

func newGCMTransformer(block cipher.Block) (gcmTransformer, error) {
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return gcmTransformer{}, err
	}
	if n := aead.NonceSize(); n != 12 {
		return gcmTransformer{}, fmt.Errorf("crypto/cipher.NewGCM returned unexpected nonce size: %d", n)
	}
	return gcmTransformer{aead}, nil
}

func (t gcmTransformer) fromStorage(data, additional []byte) ([]byte, error) {
	n := t.aead.NonceSize()
	if len(data) < n {
		return nil, errors.New("the stored data was shorter than the required size")
	}
	return t.aead.Open(nil, data[:n], data[n:], additional)
}

func (t gcmTransformer) toStorage(data, additional []byte) ([]byte, error) {
	n := t.aead.NonceSize()
	out := make([]byte, n, n+len(data)+t.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("failed to write nonce for AES-GCM: %w", err)
	}
	return t.aead.Seal(out, out[:n], data, additional), nil
}

// secretboxTransformer is secretbox: a random 24-byte nonce, then NaCl
// secretbox (XSalsa20-Poly1305). No additional data.
type secretboxTransformer struct{ key [32]byte }

const secretboxNonce = 24

func (t secretboxTransformer) fromStorage(data, _ []byte) ([]byte, error) {
	if len(data) < secretbox.Overhead+secretboxNonce {
		return nil, errors.New("the stored data was shorter than the required size")
	}
	var nonce [secretboxNonce]byte
	copy(nonce[:], data[:secretboxNonce])
	out, ok := secretbox.Open(nil, data[secretboxNonce:], &nonce, &t.key)
	if !ok {
		return nil, errors.New("output array was not large enough for encryption")
	}
	return out, nil
}

func (t secretboxTransformer) toStorage(data, _ []byte) ([]byte, error) {
	var nonce [secretboxNonce]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return secretbox.Seal(nonce[:], data, &nonce, &t.key), nil
}

package datastore

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Secrets reads and writes Secret objects in a Store, decrypting and
// encrypting with the node's EncryptionConfiguration when there is one.
type Secrets struct {
	Store      Store
	Encryption *Encryption // nil: no secrets encryption configured
}

// SecretInfo says how a stored secret was found.
type SecretInfo struct {
	Key       string
	Revision  int64
	Encrypted *Envelope // provider and key name when the value was encrypted
}

// Get reads and decodes the Secret stored under key. A missing key is
// ErrNotFound.
func (s Secrets) Get(ctx context.Context, key string) (*corev1.Secret, SecretInfo, error) {
	info := SecretInfo{Key: key}
	kv, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	info.Revision = kv.Revision
	sec, env, err := s.decode(ctx, key, kv.Value)
	info.Encrypted = env
	if err != nil {
		return nil, info, fmt.Errorf("%s (revision %d in %s %s): %w", key, kv.Revision, s.Store.Kind(), s.Store.Location(), err)
	}
	return sec, info, nil
}

func (s Secrets) decode(ctx context.Context, key string, b []byte) (*corev1.Secret, *Envelope, error) {
	env, _, enc, err := ParseEnvelope(b)
	if err != nil {
		return nil, nil, err
	}
	var envp *Envelope
	if enc {
		envp = &env
	}
	plain, err := s.Encryption.Decrypt(ctx, key, b)
	if err != nil {
		return nil, envp, err
	}
	sec, err := DecodeSecret(plain)
	return sec, envp, err
}

// Delete removes the Secret under key at its current revision. It returns
// the revision of the deletion.
func (s Secrets) Delete(ctx context.Context, key string) (int64, error) {
	kv, err := s.Store.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	return s.Store.Delete(ctx, key, kv.Revision)
}

// Put stores sec under key, encoded and encrypted as kube-apiserver would,
// replacing the current value (or creating the key). It returns the new
// revision.
func (s Secrets) Put(ctx context.Context, key string, sec *corev1.Secret) (int64, error) {
	b, err := EncodeSecret(sec)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	b, err = s.Encryption.Encrypt(ctx, key, b)
	if err != nil {
		return 0, err
	}
	var rev int64
	kv, err := s.Store.Get(ctx, key)
	switch {
	case err == nil:
		rev = kv.Revision
	case !errors.Is(err, ErrNotFound):
		return 0, err
	}
	return s.Store.Put(ctx, key, b, rev)
}

package datastore

import (
	"context"
	"testing"
)

// FuzzDecodeSecret: the protobuf decoder never panics on stored values.
func FuzzDecodeSecret(f *testing.F) {
	v := apiserverEncode(f, testSecret("CERT"))
	f.Add(v)
	f.Add(v[:len(v)/2])
	f.Add([]byte("k8s\x00"))
	f.Add([]byte("k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x00\x1a\x00\"\x00"))
	f.Add([]byte(`{"kind":"Secret"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSecret(b)
		if err == nil && s == nil {
			t.Fatal("nil secret without error")
		}
	})
}

// FuzzDecrypt: decryption (aescbc, secretbox, prefixes) then decoding
// never panics.
func FuzzDecrypt(f *testing.F) {
	enc, err := ParseEncryption([]byte(encConfig("aescbc")))
	if err != nil {
		f.Fatal(err)
	}
	plain := apiserverEncode(f, testSecret("CERT"))
	f.Add(apiserverEncrypt(f, "aescbc", testKey, plain))
	f.Add(apiserverEncrypt(f, "secretbox", testKey, plain))
	f.Add([]byte("k8s:enc:aescbc:v1:aescbckey:"))
	f.Add([]byte("k8s:enc:aescbc:v1:aescbckey:0123456789abcdef"))
	f.Add([]byte("k8s:enc:secretbox:v1:boxkey:x"))
	f.Add([]byte("k8s:enc:kms:v2:x:y"))
	f.Add(plain)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := enc.Decrypt(ctx, testKey, b)
		if err != nil {
			return
		}
		_, _ = DecodeSecret(out)
		_, _ = ParseEncryption(b)
	})
}

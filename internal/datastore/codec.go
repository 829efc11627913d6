package datastore

import (
	"bytes"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

// protoPrefix is the magic in front of every protobuf-encoded object
// kube-apiserver stores (k8s.io/apimachinery protobuf.go).
var protoPrefix = []byte{'k', '8', 's', 0}

// secretCodec is the protobuf serializer and the v1 encoder over a scheme
// that knows core/v1 only, built on first use: a command that never reads
// a Secret pays nothing for it at start-up.
var secretCodec = sync.OnceValues(func() (*protobuf.Serializer, runtime.Encoder) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail
	}
	ser := protobuf.NewSerializer(s, s)
	return ser, serializer.NewCodecFactory(s).EncoderForVersion(ser, corev1.SchemeGroupVersion)
})

// DecodeSecret decodes a v1.Secret stored by kube-apiserver: "k8s\x00"
// followed by a runtime.Unknown carrying the Secret's protobuf. The value
// must already be decrypted (see Encryption).
func DecodeSecret(b []byte) (*corev1.Secret, error) {
	if !bytes.HasPrefix(b, protoPrefix) {
		return nil, fmt.Errorf("%w: %s", ErrNotProtobuf, describePrefix(b))
	}
	ser, _ := secretCodec()
	obj, gvk, err := ser.Decode(b, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotProtobuf, err)
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil, fmt.Errorf("%w: holds %s, not a v1 Secret", ErrNotProtobuf, gvk)
	}
	return s, nil
}

// EncodeSecret encodes a Secret the way kube-apiserver stores it (before
// encryption).
func EncodeSecret(s *corev1.Secret) ([]byte, error) {
	var buf bytes.Buffer
	_, enc := secretCodec()
	if err := enc.Encode(s, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// describePrefix names what a value looks like instead, for error messages
// (never its content beyond a short, printable prefix).
func describePrefix(b []byte) string {
	switch {
	case len(b) == 0:
		return "empty value"
	case bytes.HasPrefix(b, []byte(encPrefix)):
		return "still encrypted"
	case b[0] == '{':
		return "JSON, not protobuf (a CRD or an old apiserver?)"
	}
	n := min(len(b), 8)
	return fmt.Sprintf("starts with %q, want \"k8s\\x00\"", b[:n])
}

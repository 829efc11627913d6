package lab

import "testing"

func TestBootstrapEncryptRoundTrip(t *testing.T) {
	enc, err := bootstrapEncrypt("pass", []byte(`{"ServerCA":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bootstrapDecrypt("pass", enc); err != nil || string(got) != `{"ServerCA":{}}` {
		t.Fatalf("decrypt: %q %v", got, err)
	}
	if _, err := bootstrapDecrypt("other", enc); err == nil {
		t.Fatal("decrypted with the wrong passphrase")
	}
	if k := bootstrapKey("pass"); len(k) != len("/bootstrap/")+12 {
		t.Fatalf("key %q: want /bootstrap/ + 12 hex", k)
	}
}

package cliutil

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestParseAt(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", now, false},
		{"now", now, false},
		{"2021-09-20T00:00:00Z", time.Date(2021, 9, 20, 0, 0, 0, 0, time.UTC), false},
		{"2021-09-20T02:00:00+02:00", time.Date(2021, 9, 20, 0, 0, 0, 0, time.UTC), false},
		{"2021-09-20", time.Date(2021, 9, 20, 0, 0, 0, 0, time.UTC), false},
		{"+90d", now.Add(90 * 24 * time.Hour), false},
		{"-12h", now.Add(-12 * time.Hour), false},
		{"+2w", now.Add(14 * 24 * time.Hour), false},
		{"+1.5d", now.Add(36 * time.Hour), false},
		{"yesterday", time.Time{}, true},
		{"+3x", time.Time{}, true},
		{"+d", time.Time{}, true},
		{"2021-13-01", time.Time{}, true},
		// Out of range, NaN and Inf are errors, never a wrapped date
		// (they used to become 1734-08-22).
		{"+106751d", now.Add(106751 * 24 * time.Hour), false},
		{"+106752d", time.Time{}, true},
		{"-106752d", time.Time{}, true},
		{"+1000000w", time.Time{}, true},
		{"+1e300d", time.Time{}, true},
		{"+NaNd", time.Time{}, true},
		{"+nand", time.Time{}, true},
		{"+Infd", time.Time{}, true},
		{"+infw", time.Time{}, true},
		{"+0x10d", time.Time{}, true},
		{"+-5d", time.Time{}, true},
		{"--5h", time.Time{}, true},
		{"++5h", time.Time{}, true},
		{"+9999999999h", time.Time{}, true},
		{"+1.2.3d", time.Time{}, true},
		{"+.5d", now.Add(12 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAt(tt.in, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !got.Equal(tt.want) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseAtNeverWraps(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"+1e20d", "+292y", "+3000000000h", "+99999999999999999999d", "+NaNw", "-Infd"} {
		got, err := ParseAt(s, now)
		if err == nil && (got.Year() < 1900 || got.Before(now) != (s[0] == '-')) {
			t.Errorf("%s: %s without an error", s, got)
		}
	}
}

func TestPrintErrorEscapes(t *testing.T) {
	var b bytes.Buffer
	PrintError(&b, WithHint(errors.New("open /tmp/x\x1b[2J\nk3scert: hint: all good\u202e.crt: denied"), "see \x1b]8;;http://evil\x07here"))
	want := "k3scert: error: open /tmp/x\\x1b[2J\\nk3scert: hint: all good\\u202e.crt: denied\nk3scert: hint: see \\x1b]8;;http://evil\\x07here\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
}

func TestFlagChecks(t *testing.T) {
	for _, p := range []int{0, 1, 6443, 65535} {
		if err := ValidPort("--supervisor-port", p); err != nil {
			t.Errorf("%d: %v", p, err)
		}
	}
	for _, p := range []int{-1, 65536, 70000} {
		if err := ValidPort("--supervisor-port", p); err == nil {
			t.Errorf("%d accepted", p)
		}
	}
	for _, s := range []string{"127.0.0.1:6443", "[::1]:10250", "localhost:1"} {
		if err := ValidHostPort("--endpoint", s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"127.0.0.1:70000", "127.0.0.1:0", "127.0.0.1", ":6443", "127.0.0.1:http"} {
		if err := ValidHostPort("--endpoint", s); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
	if err := OneOf("--secret", "bogus", "auto", "api"); err == nil || err.Error() != `--secret "bogus": want one of auto, api` {
		t.Errorf("OneOf: %v", err)
	}
}

func TestPrintError(t *testing.T) {
	var b bytes.Buffer
	PrintError(&b, WithHint(errors.New("data dir not found"), "pass -d"))
	if want := "k3scert: error: data dir not found\nk3scert: hint: pass -d\n"; b.String() != want {
		t.Errorf("got %q", b.String())
	}
}

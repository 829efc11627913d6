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

func TestPrintError(t *testing.T) {
	var b bytes.Buffer
	PrintError(&b, WithHint(errors.New("data dir not found"), "pass -d"))
	if want := "k3scert: error: data dir not found\nk3scert: hint: pass -d\n"; b.String() != want {
		t.Errorf("got %q", b.String())
	}
}

// Package cliutil holds the small parsing and printing rules every command
// shares: --at dates, errors with hints, terminal detection.
package cliutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// ParseAt parses a judgement time relative to now: RFC3339, YYYY-MM-DD
// (midnight UTC), or an offset "+90d", "-12h", "+2w".
func ParseAt(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "now" {
		return now, nil
	}
	if s[0] == '+' || s[0] == '-' {
		d, err := ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("--at %q: %w", s, err)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--at %q: want RFC3339 (2021-09-20T00:00:00Z), a date (2021-09-20) or an offset (+90d)", s)
}

// ParseDuration accepts Go durations plus d (days) and w (weeks).
func ParseDuration(s string) (time.Duration, error) {
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		v, err := strconv.ParseFloat(s[:n-1], 64)
		if err != nil {
			return 0, err
		}
		unit := 24 * time.Hour
		if s[n-1] == 'w' {
			unit *= 7
		}
		return time.Duration(v * float64(unit)), nil
	}
	return time.ParseDuration(s)
}

// HintError is an error that carries what to do next.
type HintError struct {
	Err   error
	Hints []string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint attaches hints to err.
func WithHint(err error, hints ...string) error { return &HintError{Err: err, Hints: hints} }

// PrintError prints "k3scert: error: ..." and one "k3scert: hint: ..." per
// hint, age-style: no capitals, no final periods.
func PrintError(w io.Writer, err error) {
	fmt.Fprintf(w, "k3scert: error: %v\n", err)
	var h *HintError
	if errors.As(err, &h) {
		for _, x := range h.Hints {
			fmt.Fprintf(w, "k3scert: hint: %s\n", x)
		}
	}
}

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

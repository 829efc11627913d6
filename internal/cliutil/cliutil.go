// Package cliutil holds the small parsing and printing rules every command
// shares: --at dates, flag validation, completion, errors with hints,
// terminal detection.
package cliutil

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/render"
	"github.com/spf13/cobra"
)

// MaxOffset is the largest date offset accepted: a time.Duration holds
// about 292 years; nothing k3scert judges lies further away.
const MaxOffset = time.Duration(math.MaxInt64)

// ParseAt parses a judgement time relative to now: RFC3339, YYYY-MM-DD
// (midnight UTC), or an offset "+90d", "-12h", "+2w". Offsets beyond about
// 292 years, NaN and Inf are errors, never a wrapped-around date. The error
// names the value, not the flag: callers prefix the flag.
func ParseAt(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "now" {
		return now, nil
	}
	if s[0] == '+' || s[0] == '-' {
		d, err := ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: %w", s, err)
		}
		if s[0] == '-' {
			d = -d
		}
		t := now.Add(d)
		if (d > 0 && t.Before(now)) || (d < 0 && t.After(now)) {
			return time.Time{}, fmt.Errorf("%q: out of range", s)
		}
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC3339 (2021-09-20T00:00:00Z), a date (2021-09-20) or an offset (+90d)", s)
}

// ParseDuration accepts Go durations plus d (days) and w (weeks), all
// non-negative (the sign belongs to the caller) and at most MaxOffset.
// The number of days or weeks is plain decimal: no NaN, Inf, exponent,
// hexadecimal or sign.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if s[0] == '+' || s[0] == '-' {
		return 0, errors.New("a second sign")
	}
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		num := s[:n-1]
		if !plainDecimal(num) {
			return 0, fmt.Errorf("%q is not a number of days or weeks", num)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, err
		}
		unit := 24 * time.Hour
		if s[n-1] == 'w' {
			unit *= 7
		}
		f := v * float64(unit)
		if math.IsNaN(f) || math.IsInf(f, 0) || f >= float64(MaxOffset) {
			return 0, fmt.Errorf("out of range (at most %d days, about 292 years)", int64(MaxOffset/(24*time.Hour)))
		}
		return time.Duration(f), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, errors.New("a second sign")
	}
	return d, nil
}

// plainDecimal reports whether s is digits with at most one decimal point.
func plainDecimal(s string) bool {
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// ValidPort checks a TCP port flag: 0 (unset) or 1-65535.
func ValidPort(flag string, p int) error {
	if p < 0 || p > 65535 {
		return fmt.Errorf("%s %d: a TCP port is 1-65535", flag, p)
	}
	return nil
}

// ValidHostPort checks a HOST:PORT flag value: a host and a port 1-65535.
func ValidHostPort(flag, s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%s %q: want HOST:PORT (%v)", flag, Safe(s), err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s %q: a TCP port is 1-65535", flag, Safe(s))
	}
	if host == "" {
		return fmt.Errorf("%s %q: no host", flag, Safe(s))
	}
	return nil
}

// OneOf checks an enum flag value.
func OneOf(flag, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q: want one of %s", flag, Safe(v), strings.Join(allowed, ", "))
}

// Complete returns a cobra completion function offering fixed values, for
// cmd.RegisterFlagCompletionFunc (-o, --profile, --secret, lab scenarios).
func Complete(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// Safe is render.Safe: what PrintError applies to everything it prints.
func Safe(s string) string { return render.Safe(s) }

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
	// Errors quote file names, certificate subjects and server replies:
	// escape them so they cannot forge lines or drive the terminal.
	fmt.Fprintf(w, "k3scert: error: %s\n", render.Safe(err.Error()))
	var h *HintError
	if errors.As(err, &h) {
		for _, x := range h.Hints {
			fmt.Fprintf(w, "k3scert: hint: %s\n", render.Safe(x))
		}
	}
}

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

package render

import (
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Safe makes a string that came from a certificate, a file name or the wire
// safe to print on a terminal, inside one line of a table: every character
// that could move the cursor, change colours, reorder the text or hide
// itself is replaced by a visible Go-style escape.
//
// Escaped: C0 and C1 controls and DEL (ESC sequences, CR, newlines, tabs
// that would split a table cell), Unicode format characters (category Cf:
// the bidi embeddings and overrides U+202A–U+202E, the isolates
// U+2066–U+2069, LRM/RLM/ALM, zero-width space/joiners U+200B–U+200D,
// word joiner, BOM, soft hyphen, tag characters), line and paragraph
// separators (U+2028, U+2029) and bytes that are not UTF-8. Everything else,
// including non-Latin scripts, is kept as is. JSON and HTML have their own
// escaping and do not use Safe.
func Safe(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s // the common case: nothing to escape, no allocation
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unsafeRune(r, n) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r, n) && r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		case unsafeRune(r, n):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports whether r (n bytes wide in its string) must be escaped.
func unsafeRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1: // not UTF-8
		return true
	case r < 0x20, r >= 0x7f && r < 0xa0: // C0, DEL, C1 (0x9b is a one-byte CSI)
		return true
	case r < 0x80:
		return false
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
}

// SafeSlice applies Safe to every element.
func SafeSlice(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = Safe(s)
	}
	return out
}

var timeType = reflect.TypeOf(time.Time{})

// safeCopy returns a deep copy of v (a report document: structs, slices,
// maps, pointers, strings, numbers, times) with Safe applied to every
// string, so a text renderer cannot forget a field, including fields added
// later. The original is not modified: JSON and HTML keep the raw values
// and escape them their own way.
func safeCopy[T any](v T) T {
	out := safeValue(reflect.ValueOf(&v).Elem())
	return out.Interface().(T)
}

func safeValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		n := reflect.New(v.Type()).Elem()
		n.SetString(Safe(v.String()))
		return n
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Type().Elem())
		n.Elem().Set(safeValue(v.Elem()))
		return n
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			n.Index(i).Set(safeValue(v.Index(i)))
		}
		return n
	case reflect.Array:
		n := reflect.New(v.Type()).Elem()
		for i := 0; i < v.Len(); i++ {
			n.Index(i).Set(safeValue(v.Index(i)))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			n.SetMapIndex(safeValue(it.Key()), safeValue(it.Value()))
		}
		return n
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Type()).Elem()
		n.Set(safeValue(v.Elem()))
		return n
	case reflect.Struct:
		if v.Type() == timeType {
			return v
		}
		n := reflect.New(v.Type()).Elem()
		n.Set(v) // unexported fields keep their values
		for i := 0; i < v.NumField(); i++ {
			if n.Field(i).CanSet() {
				n.Field(i).Set(safeValue(v.Field(i)))
			}
		}
		return n
	}
	return v
}

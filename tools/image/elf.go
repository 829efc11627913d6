package main

import (
	"bytes"
	"debug/elf"
)

// isStaticELF reports whether b is an ELF executable that needs no dynamic
// loader and no shared library (no PT_INTERP, no DT_NEEDED): what `ldd`
// calls "not a dynamic executable". The image has no libc to offer.
func isStaticELF(b []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	libs, err := f.ImportedLibraries()
	return err == nil && len(libs) == 0
}

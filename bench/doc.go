// Package bench holds whole-command benchmarks of k3scert check against the
// operator's baseline, an `openssl x509 -enddate -noout` loop over the same
// files (see README.md). It has no code of its own outside its tests.
package bench

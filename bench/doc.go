// Package bench holds whole-command benchmarks: k3scert check against the
// operator's baseline, an `openssl x509 -enddate -noout` loop over the same
// files; issue 11's budgets for the product binary (start-up, size,
// modules; `make bench-budget`); the exporter beside enix's
// x509-certificate-exporter (`make bench-peer`); and TestSameReport, which
// requires an earlier binary's `check -o json` to be byte-identical (see
// README.md). It has no code of its own outside its tests.
package bench

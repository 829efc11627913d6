package diagnose_test

import (
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check/checktest"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/report"
)

// The generated-node helpers are shared with the other package's tests
// through internal/check/checktest; these names keep the tests short.
type node = checktest.Node

var t0 = checktest.T0

const day = checktest.Day

func newNode(t *testing.T, prof k3s.Profile, now time.Time, mods ...func(*k3sgen.Options)) *node {
	return checktest.NewNode(t, prof, now, mods...)
}

func findings(r report.Report, code string) []report.Finding { return checktest.Findings(r, code) }
func codes(r report.Report) []string                         { return checktest.Codes(r) }
func dump(t *testing.T, r report.Report)                     { checktest.Dump(t, r) }

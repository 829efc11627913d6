package diagnose

// This file: unreadable sources: K3C900.

import (
	"fmt"

	"github.com/k3scert/k3scert/internal/source"
)

// problems: K3C900 for every source that could not be read.
func (d *diag) problems() {
	for _, p := range d.Inventory.Problems {
		d.add(SourceUnreadable.finding("", p.Location,
			fmt.Sprintf("%s %s: %s (%s)", p.Source, p.Location, p.Detail, p.Reason), remedyFor(p)))
	}
}

func remedyFor(p source.Problem) string {
	switch p.Reason {
	case source.ReasonPermission:
		return "run k3scert as root (the data dir is root-only)"
	case source.ReasonNotFound:
		return "restore the file from the last backup or restart the service so K3s writes it"
	case source.ReasonUnreachable, source.ReasonTLS:
		return "check that the service listens on that address, or drop the --endpoint"
	case source.ReasonSecret:
		return "the secret could not be read; run k3scert check as root on a server node so the datastore can be read"
	case source.ReasonTooLarge, source.ReasonNotRegular, source.ReasonSymlinkLoop:
		return "this is not a certificate file K3s writes; move it out of the data dir"
	}
	return "the file is damaged: restore it from the last backup, or remove the pair so K3s regenerates it on restart"
}

package diagnose

import (
	"fmt"
	"io/fs"

	"github.com/k3scert/k3scert/internal/source"
)

// keyModeMax is the widest mode a private key file may have: read and
// write for its owner only, what K3s itself writes (client-go
// util/keyutil.WriteKey, os.FileMode(0600)).
const keyModeMax fs.FileMode = 0o600

// keyModes: K3C304 for key files with any permission bit beyond 0600
// (group or other access, or execute). A key anyone on the node can read
// is a key someone may have copied; a CA key that leaked means a new CA.
func (d *diag) keyModes() {
	for _, k := range d.Inventory.Keys {
		if k.Source != source.File || k.Mode&^keyModeMax == 0 {
			continue
		}
		who := "other users"
		switch {
		case k.Mode&0o007 != 0:
			who = "every user on the node"
		case k.Mode&0o070 != 0:
			who = "the file's group"
		case k.Mode&0o100 != 0:
			who = "no one else (but it is marked executable)"
		}
		d.add(KeyModeTooOpen.finding("", k.Location,
			fmt.Sprintf("the private key %s has mode %04o (%s): %s can access it; keys should be 0600, owner read/write only", k.Location, uint32(k.Mode), k.Mode, who),
			fmt.Sprintf("chmod 0600 %s; if others could read it, treat the key as leaked: rotate the certificate (k3scert rotate), and for a CA key rotate the CA", k.Location)))
	}
}

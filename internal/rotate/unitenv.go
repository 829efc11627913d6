package rotate

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/k3scert/k3scert/internal/nodeconfig"
	"github.com/k3scert/k3scert/internal/source"
)

// ExpirationDaysEnv is the variable dynamiclistener's NewSignedCert reads
// for the validity of every certificate K3s signs: its leaves and the
// listener (rancher/dynamiclistener@2ad60ef4fd3c cert/cert.go NewSignedCert,
// factory/cert_utils.go NewSignedCert; default 365).
const ExpirationDaysEnv = "CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS"

// UnitEnv is the environment the service manager gives the K3s unit, as
// far as it matters here.
type UnitEnv struct {
	Vars map[string]string
	// From maps each variable to the file that set it last.
	From map[string]string
}

// unitDirs are where systemd looks for unit files, most specific first.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// ReadUnitEnv reads the environment of unit (e.g. "k3s", "k3s-agent",
// "rke2-server") under root ("" or "/" for the real system): Environment=
// lines of the unit file and its drop-ins, then the environment files —
// those the unit names with EnvironmentFile= (%N and %n expanded), plus the
// ones K3s's and RKE2's installers write and reference:
// /etc/default/<unit>, /etc/sysconfig/<unit>, /etc/systemd/system/<unit>.service.env
// (k3s-io/k3s@2a1e2e8cf41b install.sh: FILE_K3S_ENV=${SYSTEMD_DIR}/${SERVICE_K3S}.env,
// EnvironmentFile=-/etc/default/%N, -/etc/sysconfig/%N), /etc/systemd/system/<unit>.env,
// /usr/local/lib/systemd/system/<unit>.env (rancher/rke2@6ce1a8019
// bundle/lib/systemd/system/rke2-server.service) and, for OpenRC,
// /etc/rancher/<program>/<unit>.env. As with systemd, a file's variables
// override Environment= and a later file overrides an earlier one. Missing
// files are skipped; an unreadable one is an error naming it.
func ReadUnitEnv(root, unit, program string) (UnitEnv, error) {
	env := UnitEnv{Vars: map[string]string{}, From: map[string]string{}}
	at := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	expand := func(s string) string {
		return strings.NewReplacer("%N", unit, "%n", unit+".service").Replace(s)
	}
	var unitFiles []string
	for _, d := range unitDirs {
		p := d + "/" + unit + ".service"
		if _, err := os.Stat(at(p)); err == nil {
			unitFiles = append(unitFiles, p)
			break
		}
	}
	for _, d := range unitDirs {
		drop, _ := filepath.Glob(at(d + "/" + unit + ".service.d/*.conf"))
		sort.Strings(drop)
		for _, p := range drop {
			rel, _ := filepath.Rel(at("/"), p)
			unitFiles = append(unitFiles, "/"+filepath.ToSlash(rel))
		}
	}
	var envFiles []string
	seen := map[string]bool{}
	addFile := func(p string) {
		if !seen[p] {
			seen[p] = true
			envFiles = append(envFiles, p)
		}
	}
	for _, uf := range unitFiles {
		b, err := source.ReadFile(at(uf))
		if err != nil {
			return env, fmt.Errorf("unit file %s: %w", at(uf), err)
		}
		_, uenv, ufiles := nodeconfig.ParseUnit(b)
		for k, v := range uenv {
			env.Vars[k], env.From[k] = v, at(uf)
		}
		for _, f := range ufiles {
			if f = strings.TrimPrefix(f, "-"); f != "" {
				addFile(expand(f))
			}
		}
	}
	for _, p := range []string{"/etc/default/" + unit, "/etc/sysconfig/" + unit, "/etc/systemd/system/" + unit + ".service.env",
		"/etc/systemd/system/" + unit + ".env", "/usr/local/lib/systemd/system/" + unit + ".env", "/etc/rancher/" + program + "/" + unit + ".env"} {
		addFile(p)
	}
	for _, p := range envFiles {
		b, err := source.ReadFile(at(p))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return env, fmt.Errorf("environment file %s: %w", at(p), err)
		}
		for k, v := range nodeconfig.ParseEnvFile(b) {
			env.Vars[k], env.From[k] = v, at(p)
		}
	}
	return env, nil
}

// ExpirationDays returns CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS when it is
// set to a positive whole number, and where it came from. dynamiclistener
// falls back to 365 days when the value does not parse.
func (u UnitEnv) ExpirationDays() (int, string) {
	v, ok := u.Vars[ExpirationDaysEnv]
	if !ok {
		return 0, ""
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0, ""
	}
	return n, u.From[ExpirationDaysEnv]
}

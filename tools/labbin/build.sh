#!/usr/bin/env bash
# Builds the lab's upstream binaries from the pinned modules under
# tools/labbin into $OUT (default: bin/ at the repo root):
#   kine, kube-apiserver             the datastore and the API server
#   dynamiclistener-<version>        the :6443 supervisor of each K3s era,
#                                    built from that era's dynamiclistener
#                                    release (see docs/lab.md)
# A binary is rebuilt only when its pin changed since it was built: the pin
# is a hash of the module's go.mod, go.sum and main.go (plus the shared
# supervisorkit for the supervisors), recorded in $OUT/<name>.pin.
# Build only some: tools/labbin/build.sh kine dynamiclistener-v0.2.0
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/bin}
mkdir -p "$out"
all=(kine kube-apiserver
  dynamiclistener-v0.2.0 dynamiclistener-v0.2.1 dynamiclistener-v0.3.3
  dynamiclistener-v0.3.4 dynamiclistener-v0.9.4)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
kit="$root/tools/labbin/supervisorkit"
for name in "${names[@]}"; do
  mod="$root/tools/labbin/$name"
  [ -f "$mod/go.mod" ] || { echo "labbin: no module tools/labbin/$name" >&2; exit 2; }
  files=("$mod/go.mod" "$mod/go.sum" "$mod/main.go")
  case $name in
    dynamiclistener-*) files+=("$kit/go.mod" "$kit"/*.go) ;;
  esac
  pin=$(cat "${files[@]}" | sha256sum | cut -c1-16)
  if [ -x "$out/$name" ] && [ "$(cat "$out/$name.pin" 2>/dev/null)" = "$pin" ]; then
    echo "labbin: $name is current ($out/$name, pin $pin)"
    continue
  fi
  echo "labbin: building $name (pin $pin) ..."
  start=$(date +%s)
  cgo=1 # kine's SQLite driver needs cgo; the others do not
  case $name in dynamiclistener-*) cgo=0 ;; esac
  (cd "$mod" && CGO_ENABLED=$cgo go build -trimpath -ldflags='-s -w' -o "$out/$name.tmp" .)
  mv "$out/$name.tmp" "$out/$name"
  echo "$pin" > "$out/$name.pin"
  echo "labbin: built $name in $(( $(date +%s) - start ))s ($(du -h "$out/$name" | cut -f1))"
done

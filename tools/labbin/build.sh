#!/usr/bin/env bash
# Builds the lab's upstream binaries (kube-apiserver, kine) from the pinned
# modules under tools/labbin into $OUT (default: bin/ at the repo root).
# A binary is rebuilt only when its module's go.mod/go.sum changed since it was
# built: the pin hash is recorded next to it in $OUT/<name>.pin.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/bin}
mkdir -p "$out"
for name in kine kube-apiserver; do
  mod="$root/tools/labbin/$name"
  pin=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/main.go" | sha256sum | cut -c1-16)
  if [ -x "$out/$name" ] && [ "$(cat "$out/$name.pin" 2>/dev/null)" = "$pin" ]; then
    echo "labbin: $name is current ($out/$name, pin $pin)"
    continue
  fi
  echo "labbin: building $name (pin $pin) ..."
  start=$(date +%s)
  (cd "$mod" && CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o "$out/$name.tmp" .)
  mv "$out/$name.tmp" "$out/$name"
  echo "$pin" > "$out/$name.pin"
  echo "labbin: built $name in $(( $(date +%s) - start ))s"
done

#!/usr/bin/env bash
# Builds the test probe image (probe/main.go: a static Go binary, see its header) as an image archive
# for load-image.sh, and prints the archive's path. Cached by the hash of its sources.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/probe/main.go" "$here/probe/go.mod" "$here/image-tar.py" | sha256sum | cut -c1-12)
out=${TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskjob-testenv}/images/probe-$key.tar
if [ ! -f "$out" ]; then
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$here/probe" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$tmp/probe" .)
  # Runs as a non-root user, as the restricted Pod Security level asks.
  python3 "$here/image-tar.py" --tag localhost/taskjob-testenv/probe:1 --entrypoint /probe --user 65534:65534 \
    --file "$tmp/probe:/probe" "$tmp/probe.tar"
  mv "$tmp/probe.tar" "$out"
fi
echo "$out"

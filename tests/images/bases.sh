#!/usr/bin/env bash
# Builds the stand-ins for the public base images CI cannot pull, from Debian packages, into our engine
# (docs/testing.md, "Images"):
#   taskjob-ci/python:3.11-bookworm  stands in for python:3.11-slim (operator) and python:3.12-slim (runner)
#   busybox:1.36                     stands in for the examples' busybox:1.36 (the manifests stay unchanged)
# Each is rebuilt only when its recipe changes: the hash of its recipe (the function that fills its rootfs, its
# image settings, the Debian suite and mirror, the host's extra CA certificates) labels the image and names its
# rootfs tarball in $images_cache.
# Needs our engine up (docker.sh up); installs debootstrap with apt when it is missing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
images_lock

python_image=${TASKJOB_PYTHON_BASE:-taskjob-ci/python:3.11-bookworm}
busybox_image=busybox:1.36
suite=bookworm
# The machine's configured Debian mirror (deb822 sources first, then a one-line sources.list).
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
# The host's own CA certificates (a TLS-intercepting proxy's among them): pip inside `docker build` reaches
# PyPI through that proxy, so the stand-in trusts what the host trusts. Only CI's local images carry them.
extra_cas=(/usr/local/share/ca-certificates/*.crt)
[ -e "${extra_cas[0]}" ] || extra_cas=()

mkdir -p "$images_cache"

label_of() { docker_ image inspect --format '{{index .Config.Labels "dev.taskjob.recipe"}}' "$1" 2>/dev/null || true; }

# import NAME RECIPE TARBALL CHANGE...: the tarball as image NAME, labelled with its recipe.
import() {
  local name=$1 recipe=$2 tarball=$3
  shift 3
  local changes=(--change "LABEL dev.taskjob.recipe=$recipe")
  local c
  for c in "$@"; do changes+=(--change "$c"); done
  zcat "$tarball" | docker_ import "${changes[@]}" - "$name" >/dev/null
  log "$name imported from $tarball ($(docker_ image inspect --format '{{.Size}}' "$name" | numfmt --to=iec-i --suffix=B) )"
}

# ensure NAME BUILDER CHANGE...: NAME is in the engine with this recipe; BUILDER ROOTFS fills a rootfs if needed.
ensure() {
  local name=$1 builder=$2 recipe
  shift 2
  recipe=$( { declare -f "$builder"; printf '%s\n' "$@" "$suite" "$mirror"; cat "${extra_cas[@]}" </dev/null; } |
    sha256sum | cut -c1-12)
  if [ "$(label_of "$name")" = "$recipe" ]; then
    log "$name is current (recipe $recipe)"
    return 0
  fi
  local tarball
  tarball=$images_cache/$(echo "$name" | tr '/:' '__')-$recipe.tar.gz
  if [ ! -s "$tarball" ]; then
    local rootfs start=$SECONDS
    rootfs=$(mktemp -d "$images_cache/rootfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$rootfs' '$tarball.tmp'" EXIT
    log "building the rootfs of $name (recipe $recipe)"
    "$builder" "$rootfs"
    tar -C "$rootfs" --numeric-owner -c . | gzip -1 >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
    # Older recipes' tarballs of this image are of no more use.
    find "$images_cache" -maxdepth 1 -name "$(echo "$name" | tr '/:' '__')-*.tar.gz" ! -name "$(basename "$tarball")" \
      -delete
    log "rootfs of $name built in $((SECONDS - start))s"
  fi
  import "$name" "$recipe" "$tarball" "$@"
}

python_rootfs() {
  local rootfs=$1
  command -v debootstrap >/dev/null || {
    log "installing debootstrap with apt"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        --no-install-recommends debootstrap; } >&2
  }
  # What python:*-slim gives a Dockerfile: python and pip on PATH, venv, CA certificates; minbase already has
  # useradd/groupadd (passwd).
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$images_cache/debootstrap.log" 2>&1 || {
    log "debootstrap failed; the end of $images_cache/debootstrap.log:"
    tail -n 20 "$images_cache/debootstrap.log" >&2
    return 1
  }
  if [ ${#extra_cas[@]} -gt 0 ]; then
    cp "${extra_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  # The public images' pip installs into their Python; Debian marks its Python externally managed (PEP 668).
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Package lists and caches are not part of an image (the public ones clean them too).
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* "$rootfs"/debootstrap
}

busybox_rootfs() {
  local rootfs=$1 work
  work=$(mktemp -d)
  # Debian's static busybox: one binary, no libraries. Fetched as a package file, not installed on the host.
  (cd "$work" && apt-get download -qq busybox-static 2>/dev/null) || {
    apt-get update -qq >&2
    (cd "$work" && apt-get download -qq busybox-static)
  }
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/x"
  mkdir -p "$rootfs"/{bin,etc,root,home,var/spool/mail,usr/sbin,dev,proc,sys}
  install -d -m 1777 "$rootfs/tmp"
  cp "$work/x/bin/busybox" "$rootfs/bin/busybox"
  local applet
  # Every applet as a link in /bin, as in the public busybox image.
  for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
  rm -rf "$work"
}

ensure "$python_image" python_rootfs 'ENV LANG=C.UTF-8' 'CMD ["python3"]'
ensure "$busybox_image" busybox_rootfs 'CMD ["sh"]'

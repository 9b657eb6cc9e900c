#!/usr/bin/env bash
# Build the "stock-like" images the workspace tests use: images made the way people's own images
# are, not prepared for Firebox. No registry is needed: each root filesystem is made here and
# `docker import`ed. Every image is tagged with a hash of this script, so CI rebuilds them only
# when the recipe changes (tests compute the same tag: tests/support/stock_images.py).
#
#   firebox-stock-debian     debootstrap --variant=minbase bookworm: root-only passwd, no /workspace
#   firebox-stock-busybox    busybox, root-only passwd, no /workspace, /tmp mode 0755
#   firebox-stock-user       busybox with USER 1000 and WORKDIR /app (a passwd entry for 1000)
#   firebox-stock-entrypoint busybox whose ENTRYPOINT exits at once (/bin/false)
#   firebox-stock-volume     busybox declaring VOLUME /workspace, the directory root-owned with a file
#   firebox-stock-noshell    a single static binary at /busybox: no /bin/sh (like a distroless image)
#
# Prints the tag on stdout. DEBIAN_MIRROR, DEBIAN_SUITE, DEBOOTSTRAP_CACHE as in build-base-image.sh.
set -euo pipefail

TAG=$(sha256sum "$0" | cut -c1-12)
SUITE=${DEBIAN_SUITE:-bookworm}
CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/firebox-debootstrap}
NAMES=(debian busybox user entrypoint volume noshell)

missing=()
for name in "${NAMES[@]}"; do
  docker image inspect "firebox-stock-$name:$TAG" >/dev/null 2>&1 || missing+=("$name")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$TAG"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "build-stock-images: needs root (debootstrap, file ownership); missing: ${missing[*]}" >&2
  exit 1
fi
need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
{ [ -x /bin/busybox ] && /bin/busybox --list | grep -qx setsid; } || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/firebox-stock.XXXXXX)
trap 'rm -rf "$work"' EXIT

import() { # DIR NAME [--change ...]
  local dir=$1 name=$2
  shift 2
  tar --numeric-owner -C "$dir" -c . | docker import "$@" - "firebox-stock-$name:$TAG" >/dev/null
  echo "build-stock-images: built firebox-stock-$name:$TAG" >&2
}

busybox_root() { # DIR: busybox with its applets and only root in /etc/passwd, /tmp 0755
  local root=$1
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  chmod 0755 "$root/tmp"
}
PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

for name in "${missing[@]}"; do
  root="$work/$name"
  mkdir -p "$root"
  case $name in
    debian)
      mirror=${DEBIAN_MIRROR:-$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources |
        awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)}
      mirror=${mirror:-http://deb.debian.org/debian}
      mkdir -p "$CACHE"
      debootstrap --variant=minbase --cache-dir="$CACHE" "$SUITE" "$root" "$mirror" >"$work/deb.log" 2>&1 || {
        tail -n 30 "$work/deb.log" >&2
        exit 1
      }
      chroot "$root" apt-get clean
      rm -rf "$root"/var/lib/apt/lists/* "$root"/etc/hostname
      : >"$root/etc/resolv.conf"
      import "$root" debian --change "$PATH_ENV" --change 'CMD ["bash"]'
      ;;
    busybox)
      busybox_root "$root"
      import "$root" busybox --change "$PATH_ENV" --change 'CMD ["sh"]'
      ;;
    user)
      busybox_root "$root"
      printf 'app:x:1000:1000:app:/home/app:/bin/sh\n' >>"$root/etc/passwd"
      printf 'app:x:1000:\n' >>"$root/etc/group"
      mkdir -p "$root/app" "$root/home/app"
      chown 1000:1000 "$root/app" "$root/home/app"
      import "$root" user --change "$PATH_ENV" --change 'USER 1000' --change 'WORKDIR /app' \
        --change 'CMD ["sh"]'
      ;;
    entrypoint)
      busybox_root "$root"
      import "$root" entrypoint --change "$PATH_ENV" --change 'ENTRYPOINT ["/bin/false"]' \
        --change 'CMD ["--version"]'
      ;;
    volume)
      busybox_root "$root"
      mkdir -p "$root/workspace"
      echo "shipped in the image" >"$root/workspace/README"
      import "$root" volume --change "$PATH_ENV" --change 'VOLUME /workspace' --change 'CMD ["sh"]'
      ;;
    noshell)
      mkdir -p "$root/etc"
      cp /bin/busybox "$root/busybox"
      printf 'root:x:0:0:root:/root:/busybox\n' >"$root/etc/passwd"
      import "$root" noshell --change 'ENTRYPOINT ["/busybox"]' --change 'CMD ["true"]'
      ;;
  esac
done
echo "$TAG"

#!/usr/bin/env bash
# Make the base image for Firebox's service image with no registry: a minimal Debian bookworm
# root filesystem (python3 + venv) made with debootstrap from the Debian mirror this machine's
# apt already uses, then `docker import`ed. Skips the work when the image exists (FORCE=1 rebuilds).
#
#   FIREBOX_BASE_IMAGE  image to make            (default firebox-base:bookworm)
#   DEBIAN_MIRROR       mirror URL               (default: the first Debian mirror in /etc/apt/sources.list*)
#   DEBIAN_SUITE        suite                    (default bookworm)
#   DEBOOTSTRAP_CACHE   where .deb files are kept between runs (default /var/cache/firebox-debootstrap)
set -euo pipefail

IMAGE=${FIREBOX_BASE_IMAGE:-firebox-base:bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}
CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/firebox-debootstrap}
PACKAGES=python3,python3-venv,ca-certificates

if docker image inspect "$IMAGE" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ]; then
  echo "build-base-image: $IMAGE exists (FORCE=1 to rebuild)" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "build-base-image: debootstrap needs root; run as root (or sudo)" >&2
  exit 1
fi

mirror_from_apt() {
  # deb822 files ("URIs: http://deb.debian.org/debian") and one-line files ("deb http://... bookworm main").
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'
  } | grep -E '/debian/?$' | head -n 1 || true
}
MIRROR=${DEBIAN_MIRROR:-$(mirror_from_apt)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "build-base-image: installing debootstrap" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

started=$(date +%s)
root=$(mktemp -d /var/tmp/firebox-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$CACHE"
echo "build-base-image: debootstrap $SUITE from $MIRROR (packages cached in $CACHE)" >&2
debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE" \
  "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
  tail -n 30 "$root.log" >&2
  echo "build-base-image: debootstrap failed; full log in $root.log" >&2
  exit 1
}
rm -f "$root.log"

# Nothing in the image needs apt's lists, docs, man pages or locales; leaving them out
# halves the size. /etc/resolv.conf and /etc/hostname are managed by the engine.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/* "$root"/usr/share/info/* "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/etc/hostname
: >"$root/etc/resolv.conf"
echo "$MIRROR" >"$root/etc/firebox-base-mirror"

tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/usr/bin/python3"]' \
  --message "debootstrap --variant=minbase $SUITE ($PACKAGES)" - "$IMAGE" >/dev/null
echo "build-base-image: built $IMAGE in $(($(date +%s) - started)) s" >&2

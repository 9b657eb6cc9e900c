#!/usr/bin/env bash
# Build the workspace image Firebox uses by default and in tests, with no registry: a root
# filesystem made from Debian's busybox-static, imported with `docker import`.
set -euo pipefail

IMAGE=${FIREBOX_IMAGE:-firebox-busybox:latest}
if docker image inspect "$IMAGE" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ]; then
  exit 0
fi
if [ ! -x /bin/busybox ] || ! /bin/busybox --list | grep -qx setsid; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,workspace,root,home/firebox,proc,sys,dev}
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
firebox:x:1000:1000:firebox:/home/firebox:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$root/etc/group" <<'G'
root:x:0:
firebox:x:1000:
nogroup:x:65534:
G
chmod 1777 "$root/tmp"
chown 1000:1000 "$root/workspace" "$root/home/firebox"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'WORKDIR /workspace' \
  --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "build-images: built $IMAGE" >&2

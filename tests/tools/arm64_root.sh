#!/usr/bin/env bash
# Makes the arm64 Debian root that the aarch64-host test runs its sshd in (tests/arm64.rs):
# Debian bookworm, minbase plus openssh-server, made by debootstrap and run under qemu-user
# through binfmt_misc. Cached in .cache/arm64-root (a second run returns at once); a partial
# build is never left where the test looks.
#
# Needs root, debootstrap, qemu-user-static and the network (deb.debian.org, or $DEBIAN_MIRROR);
# scripts/install-deps.sh installs the packages. Prints the root's path on success.
set -euo pipefail
cd "$(dirname "$0")/../.."

root="$PWD/.cache/arm64-root"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# binfmt_misc: lets the kernel exec aarch64 binaries through qemu, also inside the chroot
# (the F flag opens the interpreter once, at registration).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -r "$conf" ] || { echo "$conf is missing: apt-get install qemu-user-static" >&2; exit 1; }
  cat "$conf" > /proc/sys/fs/binfmt_misc/register
fi

if [ -e "$root/.complete" ]; then
  echo "$root"
  exit 0
fi

command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
work="$root.partial.$$"
cleanup() {
  # debootstrap mounts /proc and /sys inside the root while it configures packages.
  for m in proc sys; do
    if mountpoint -q "$work/$m" 2>/dev/null; then umount -l "$work/$m" || true; fi
  done
  if grep -q " $work/" /proc/mounts; then
    echo "not removing $work: something is still mounted in it" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
mkdir -p "$(dirname "$root")"
started=$(date +%s)
echo "making the arm64 Debian root in $root (debootstrap, a few minutes)" >&2
debootstrap --arch=arm64 --variant=minbase --include=openssh-server bookworm "$work" "$mirror" \
  > "$work.log" 2>&1 || { tail -n 30 "$work.log" >&2; rm -f "$work.log"; exit 1; }
rm -f "$work.log"
# The host keys debootstrap generated are not used (each test makes its own), and no sshd of
# the root is ever started as a service.
rm -f "$work"/etc/ssh/ssh_host_*
rm -rf "$work"/var/cache/apt/archives/*.deb
touch "$work/.complete"
rm -rf "$root"
mv "$work" "$root"
trap - EXIT
echo "arm64 root ready in $(( $(date +%s) - started )) s" >&2
echo "$root"

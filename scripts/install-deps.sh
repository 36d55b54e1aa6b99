#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian/Ubuntu machine:
#   - OpenSSH server and client (the tests start their own throwaway sshd on 127.0.0.1),
#   - small tools the tests use (file, socat, curl, sshpass, git, python3-seccomp),
#   - the aarch64 stub's cross toolchain: Debian's rustc-web/cargo-web with the arm64 standard
#     library and gcc-aarch64-linux-gnu (rustup cannot add targets here; local/build.rs finds
#     them in /usr/bin),
#   - the emulated aarch64 host of tests/arm64.rs: qemu-user-static (with binfmt_misc) and
#     debootstrap, and its arm64 Debian root in .cache/arm64-root (tests/tools/arm64_root.sh),
#   - the real OpenCode 1.18.33 from npm, into .cache/opencode (for the end-to-end tests).
# Idempotent: skips what is already there. Set SKIP_OPENCODE=1 to skip the npm part,
# SKIP_ARM64=1 to skip the aarch64 toolchain and host (the build then embeds x86_64 only).
set -euo pipefail
cd "$(dirname "$0")/.."

OPENCODE_VERSION=1.18.33

need_apt=()
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v file >/dev/null 2>&1 || need_apt+=(file)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v sshpass >/dev/null 2>&1 || need_apt+=(sshpass)
command -v cksum >/dev/null 2>&1 || need_apt+=(coreutils)
command -v git >/dev/null 2>&1 || need_apt+=(git)
# OpenCode itself as the remote (the agent reference, tests/src/reference.rs) searches with rg.
command -v rg >/dev/null 2>&1 || need_apt+=(ripgrep)
# The ProxyJump tests put hosts in network namespaces.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# The host key prompt test runs setup on a pseudo-terminal with `script`.
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
[ -x /usr/bin/time ] || need_apt+=(time)
# The old-kernel test runs the stub under a seccomp filter (tests/tools/oldkernel_exec.py).
/usr/bin/python3 -c 'import seccomp' >/dev/null 2>&1 || need_apt+=(python3-seccomp)

need_arm64=0
if [ "${SKIP_ARM64:-0}" != 1 ] && [ "$(uname -m)" = x86_64 ]; then
  [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] || need_apt+=(rustc-web cargo-web)
  [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || { need_apt+=(libstd-rust-web-dev:arm64); need_arm64=1; }
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu)
  [ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need_apt+=(libc6-dev-arm64-cross)
  [ -x /usr/bin/qemu-aarch64-static ] || need_apt+=(qemu-user-static)
  [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${need_apt[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "installing: ${need_apt[*]}" >&2
  if [ "$need_arm64" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "${SKIP_OPENCODE:-0}" != 1 ]; then
  bin=.cache/opencode/node_modules/.bin/opencode
  if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "$OPENCODE_VERSION" ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm is required to install opencode-ai@$OPENCODE_VERSION" >&2; exit 1; }
    echo "installing opencode-ai@$OPENCODE_VERSION into .cache/opencode" >&2
    mkdir -p .cache/opencode
    npm install --prefix .cache/opencode --no-audit --no-fund --loglevel=error "opencode-ai@$OPENCODE_VERSION" >&2
  fi
  "$bin" --version >/dev/null
fi

if [ "${SKIP_ARM64:-0}" != 1 ] && [ "$(uname -m)" = x86_64 ]; then
  # Quick when cached; the first time a few minutes (debootstrap of a minimal arm64 Debian).
  if [ "$(id -u)" -eq 0 ]; then
    tests/tools/arm64_root.sh >/dev/null
  else
    sudo tests/tools/arm64_root.sh >/dev/null
  fi
fi

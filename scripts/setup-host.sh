#!/usr/bin/env bash
# Prepare a host for OpenCode remote workspaces: binary install only.
#
#   scripts/setup-host.sh [--accept-new] <host> <user> [port] [identity-file]
#
# Verifies SSH (host key checked against known_hosts: an unknown key is shown and recorded only
# after you confirm at the terminal, or with --accept-new; a changed key is always refused),
# installs a dedicated key on password-only hosts (typing the password yourself, or through
# sshpass with SSHPASS set; otherwise it prints the manual steps), detects the platform, creates
# ~/.opencode-remote/{bin,log,state}, installs or upgrades the stub and runs its --version.
# It starts nothing on the host and writes no token: OpenCode starts the stub per connection.
# Safe to run again; fast when the right stub is already there.
set -euo pipefail

usage() {
  echo "usage: setup-host.sh [--accept-new] <host> <user> [port] [identity-file]" >&2
  exit 2
}

accept_new=()
if [ "${1:-}" = "--accept-new" ]; then
  accept_new=(--accept-new)
  shift
fi
[ $# -ge 2 ] && [ $# -le 4 ] || usage
host=$1
user=$2
port=${3:-22}
identity=${4:-}
case $port in
  ''|*[!0-9]*) echo "setup-host.sh: port must be a number between 1 and 65535, got '$port'" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "setup-host.sh: port must be between 1 and 65535, got $port" >&2
  exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
find_binary() {
  if [ -n "${OPENCODE_REMOTE_BIN:-}" ]; then echo "$OPENCODE_REMOTE_BIN"; return; fi
  if [ -x "$here/opencode-remote" ]; then echo "$here/opencode-remote"; return; fi
  # In the repository: the newer of the release and debug builds.
  newest=""
  for candidate in "$here/../target/release/opencode-remote" "$here/../target/debug/opencode-remote"; do
    if [ -x "$candidate" ] && { [ -z "$newest" ] || [ "$candidate" -nt "$newest" ]; }; then newest=$candidate; fi
  done
  if [ -n "$newest" ]; then echo "$newest"; return; fi
  if command -v opencode-remote >/dev/null 2>&1; then command -v opencode-remote; return; fi
  echo "setup-host.sh: cannot find the opencode-remote binary (build it with 'cargo build --release' or put it on PATH)" >&2
  exit 1
}
bin=$(find_binary)

destination="$user@$host:$port"
case $host in *:*) destination="$user@[$host]:$port" ;; esac
args=(setup "$destination" ${accept_new[@]+"${accept_new[@]}"})
if [ -n "$identity" ]; then
  args+=(-i "$identity")
fi

# Passwords never go through argv or logs: the binary asks at the terminal (no echo). Without a
# terminal, sshpass can answer that prompt from the SSHPASS environment variable.
if [ ! -t 0 ] && [ -n "${SSHPASS:-}" ] && command -v sshpass >/dev/null 2>&1; then
  exec sshpass -e "$bin" "${args[@]}"
fi
exec "$bin" "${args[@]}"

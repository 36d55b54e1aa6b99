#!/usr/bin/env bash
# Manage the opencode-remote-provider entry of your OpenCode config, and set up hosts.
#
#   scripts/opencode-remote-cli.sh init
#   scripts/opencode-remote-cli.sh add <provider> <host> <user> [port] [identity-file] [--ssh-host ADDR]
#   scripts/opencode-remote-cli.sh remove <provider> <host>
#   scripts/opencode-remote-cli.sh list
#   scripts/opencode-remote-cli.sh setup <host> <user> [port] [identity-file]
#
# A thin wrapper: the config commands are `opencode-remote config …` (comment-preserving JSONC
# edits, timestamped backups, atomic writes, all in Rust), and `setup` is scripts/setup-host.sh.
# The config is $CONFIG_FILE, else ~/.config/opencode/opencode.jsonc if it exists, else
# ~/.config/opencode/opencode.json ($XDG_CONFIG_HOME is honoured).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
me=$(basename "$0")

synopsis() {
  cat <<EOF
usage: $me init
       $me add <provider> <host> <user> [port] [identity-file] [--ssh-host ADDR]
       $me remove <provider> <host>
       $me list
       $me setup <host> <user> [port] [identity-file]
EOF
}

usage() {
  synopsis
  cat <<EOF

  init    create the OpenCode config with the opencode-remote-provider plugin entry, or add
          the entry to an existing config (comments are kept; does nothing if it is there)
  add     add a host to a provider (created if missing); <host> is the entry's name and, unless
          --ssh-host is given, the address SSH connects to
  remove  remove a host (by name or alias) from a provider
  list    show providers, hosts, aliases, labels and SSH targets
  setup   install the stub on a host (scripts/setup-host.sh; starts nothing there)

The config is \$CONFIG_FILE, else ~/.config/opencode/opencode.jsonc if it exists, else
~/.config/opencode/opencode.json. Every change first saves <config>.bak.<YYYYmmdd-HHMMSS>.
Only package-based plugin entries are managed; path-based ones are shown but never changed.
EOF
}

bad_usage() {
  [ $# -eq 0 ] || echo "$me: $*" >&2
  synopsis >&2
  echo "(run '$me --help' for details)" >&2
  exit 2
}

find_binary() {
  if [ -n "${OPENCODE_REMOTE_BIN:-}" ]; then
    echo "$OPENCODE_REMOTE_BIN"
    return
  fi
  if [ -x "$here/opencode-remote" ]; then
    echo "$here/opencode-remote"
    return
  fi
  # In a checkout: the newer of the release and debug builds.
  local release=$here/../target/release/opencode-remote
  local debug=$here/../target/debug/opencode-remote
  if [ -x "$release" ] && { [ ! -x "$debug" ] || [ ! "$debug" -nt "$release" ]; }; then
    echo "$release"
    return
  fi
  if [ -x "$debug" ]; then
    echo "$debug"
    return
  fi
  if command -v opencode-remote >/dev/null 2>&1; then
    command -v opencode-remote
    return
  fi
  echo "$me: cannot find the opencode-remote binary (looked next to this script, in" \
    "target/release and target/debug, and on PATH); build it with 'cargo build --release'" >&2
  exit 1
}

config() {
  local bin
  bin=$(find_binary)
  exec "$bin" config "$@"
}

[ $# -ge 1 ] || bad_usage
command=$1
shift
case $command in
  init | list)
    [ $# -eq 0 ] || bad_usage "'$command' takes no arguments"
    config "$command"
    ;;
  add)
    options=()
    positional=()
    while [ $# -gt 0 ]; do
      case $1 in
        --ssh-host)
          [ $# -ge 2 ] || bad_usage "--ssh-host needs an address"
          options+=(--ssh-host "$2")
          shift 2
          ;;
        --ssh-host=*)
          options+=("$1")
          shift
          ;;
        --*) bad_usage "unknown option $1" ;;
        *)
          positional+=("$1")
          shift
          ;;
      esac
    done
    if [ ${#positional[@]} -lt 3 ] || [ ${#positional[@]} -gt 5 ]; then
      bad_usage "'add' takes <provider> <host> <user> [port] [identity-file]"
    fi
    # `--` keeps values such as a port of -1 from being read as options (they get a clear error).
    config add ${options[@]+"${options[@]}"} -- "${positional[@]}"
    ;;
  remove)
    [ $# -eq 2 ] || bad_usage "'remove' takes <provider> <host>"
    config remove -- "$1" "$2"
    ;;
  setup)
    [ $# -ge 2 ] || bad_usage "'setup' takes <host> <user> [port] [identity-file]"
    exec "$here/setup-host.sh" "$@"
    ;;
  -h | --help | help)
    usage
    ;;
  *)
    bad_usage "unknown command '$command'"
    ;;
esac

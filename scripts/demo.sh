#!/usr/bin/env bash
# The main job on an embedded default: builds everything, starts a throwaway OpenSSH sshd on
# 127.0.0.1 as "the remote host", installs the stub there over SSH, opens a bridge and shows live
# requests (health, SSE) going through it. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_OPENCODE=1 scripts/install-deps.sh
cargo build --release --workspace --locked
exec target/release/opencode-remote-demo "$@"

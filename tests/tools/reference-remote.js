// Test fixture: OpenCode 1.18.33 itself as the remote, the way OpenCode's own remote mode runs
// it: `opencode serve` started on the host over ssh with the environment OpenCode hands the
// adaptor (the user's whole auth.json included), reached through an `ssh -N -L` tunnel the
// test harness keeps open. The reference our stub is compared with (differential tests and
// the agent benchmark); see tests/src/reference.rs.
//
// Options (all set by the harness):
//   url        the tunnel's local end, e.g. "http://127.0.0.1:40123"
//   directory  the project directory on the host
//   server     argv of the ssh command that starts the server; its remote command reads
//              NAME=value lines from stdin up to an empty line, exports them, then execs
//              `opencode serve` (so nothing secret lands in argv or on disk)
//   log        file receiving the server's output
import { openSync } from "node:fs"
import { spawn } from "node:child_process"

const HEALTH_LIMIT_MS = 60_000

async function healthy(url) {
  try {
    const answer = await fetch(`${url}/global/health`, { signal: AbortSignal.timeout(2000) })
    return answer.ok
  } catch {
    return false
  }
}

export const ReferenceRemote = async (input, options = {}) => {
  input.experimental_workspace.register("reference-remote", {
    name: "OpenCode as the remote (test reference)",
    description: "opencode serve on the host, through ssh -N -L",
    configure(config) {
      return { ...config, directory: options.directory }
    },
    async create(_config, env) {
      const [command, ...args] = options.server
      const output = openSync(options.log, "a")
      const child = spawn(command, args, {
        stdio: ["pipe", output, output],
        detached: true,
      })
      child.unref()
      for (const [name, value] of Object.entries(env)) {
        if (value === undefined || value === null) continue
        const text = String(value)
        if (text.includes("\n")) throw new Error(`${name} spans lines; cannot pass it`)
        child.stdin.write(`${name}=${text}\n`)
      }
      child.stdin.end("\n")
      const started = Date.now()
      while (Date.now() - started < HEALTH_LIMIT_MS) {
        if (await healthy(options.url)) return
        if (child.exitCode !== null) throw new Error(`the reference server exited (${child.exitCode})`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      throw new Error(`the reference server did not answer at ${options.url}`)
    },
    async remove() {},
    target() {
      return { type: "remote", url: options.url }
    },
  })
  return {}
}

export default ReferenceRemote

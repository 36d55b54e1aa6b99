// One `opencode-remote bridge` child process per workspace.
//
// The bridge prints one JSON line with its URL once the stub on the host is healthy, then serves
// until its stdin closes. Its stdin/stdout also carry calls to the local OpenCode server:
// OpenCode's plain TUI serves its API in-process only, so the bridge cannot reach it over HTTP;
// it writes {"call":N,"method","path"} lines and we answer {"reply":N,"status","body"} using
// OpenCode's own client. Secrets (the URL secret, the options) go over stdin, never argv.

import { spawn } from "node:child_process";
import readline from "node:readline";

const STDERR_TAIL = 8192;

export class Bridge {
  // spec: { binary, args, config: {secret, options}, call(method, path) -> {status, body}, log }
  constructor(spec) {
    this.spec = spec;
    this.url = undefined;
    this.info = undefined;
    this.stderr = "";
    this.exited = false;
    this.exitCode = undefined;
    this.onExit = undefined;
    const child = spawn(spec.binary, spec.args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: scrubbedEnv(),
    });
    this.child = child;
    child.stdin.on("error", () => {});
    child.stdin.write(JSON.stringify(spec.config) + "\n");
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text) => {
      this.stderr = (this.stderr + text).slice(-STDERR_TAIL);
      spec.log?.("debug", text.trimEnd());
    });
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    const lines = readline.createInterface({ input: child.stdout });
    lines.on("line", (line) => this.#line(line));
    child.on("error", (err) => {
      this.exited = true;
      this.rejectReady(new Error(`cannot run ${spec.binary}: ${err.message}`));
    });
    child.on("exit", (code, signal) => {
      this.exited = true;
      this.exitCode = code ?? signal;
      const why = this.stderrMessage() || `exit ${code ?? signal}`;
      this.rejectReady(new Error(why));
      this.onExit?.(code, signal);
    });
  }

  // The last "error: …" line the binary printed, or the stderr tail.
  stderrMessage() {
    const lines = this.stderr.split("\n").map((l) => l.trim()).filter(Boolean);
    const error = lines.reverse().find((l) => l.startsWith("error: "));
    return error ? error.slice("error: ".length) : lines.slice(0, 5).reverse().join("\n");
  }

  #line(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (this.url === undefined && typeof message.url === "string") {
      this.url = message.url;
      this.info = message;
      this.resolveReady(message);
      return;
    }
    if (typeof message.call === "number") {
      this.#answer(message);
    }
  }

  async #answer(message) {
    let reply;
    try {
      const { status, body } = await this.spec.call(message.method, message.path);
      reply = { reply: message.call, status, body: body ?? null };
    } catch (err) {
      reply = { reply: message.call, status: 502, body: { name: "PluginError", data: { message: String(err?.message ?? err) } } };
    }
    if (!this.exited) this.child.stdin.write(JSON.stringify(reply) + "\n");
  }

  alive() {
    return !this.exited;
  }

  // Closes stdin (the bridge's signal to stop), then SIGTERM, then SIGKILL.
  async stop(graceMs = 3000) {
    if (this.exited) return;
    this.onExit = undefined;
    const done = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGTERM"), graceMs);
    const killer = setTimeout(() => this.child.kill("SIGKILL"), graceMs * 2);
    await done;
    clearTimeout(timer);
    clearTimeout(killer);
  }
}

// The bridge needs HOME, PATH, SSH_AUTH_SOCK and the like, but never the user's model credentials
// that OpenCode keeps in its environment.
function scrubbedEnv() {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key === "OPENCODE_AUTH_CONTENT" || /(_API_KEY|_TOKEN|_SECRET)$/.test(key)) delete env[key];
  }
  return env;
}

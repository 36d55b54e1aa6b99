// Unit tests of the plugin's state files (run by scripts/test.sh: node --test local/plugin/test/).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ocr-plugin-state-"));
process.env.XDG_STATE_HOME = dir;
const state = await import("../lib/state.js");

test("a lease whose create is still running counts, one left by a crashed create expires", () => {
  // w1 is being created (lease taken, record not saved yet): nobody else may take the host.
  state.acquireLease("p", "h", "w1", "exclusive");
  assert.throws(() => state.acquireLease("p", "h", "w2", "shared"), /leased exclusively by workspace w1/);
  // Its record appears once the bridge is up: still exclusive.
  state.saveWorkspace("w1", { workspaceID: "w1", port: 1, secret: "s" });
  assert.throws(() => state.acquireLease("p", "h", "w2", "shared"), /w1/);
  // Removed: the host is free again.
  state.forgetWorkspace("w1");
  state.releaseLease("w1");
  state.acquireLease("p", "h", "w2", "shared");
  // A holder from long ago without a record (its create crashed) no longer blocks.
  const file = path.join(dir, "opencode-remote", "leases.json");
  const leases = JSON.parse(fs.readFileSync(file, "utf8"));
  leases["p/h"][0].since = 0;
  leases["p/h"][0].mode = "exclusive";
  fs.writeFileSync(file, JSON.stringify(leases));
  state.acquireLease("p", "h", "w3", "exclusive");
  assert.deepEqual(state.leases()["p/h"].map((h) => h.workspaceID), ["w3"]);
});

test("state files are private and written whole", () => {
  state.saveWorkspace("w9", { workspaceID: "w9", port: 2, secret: "x" });
  const file = state.workspaceFile("w9");
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(state.loadWorkspace("w9"), { workspaceID: "w9", port: 2, secret: "x" });
  assert.deepEqual(fs.readdirSync(path.dirname(file)).filter((f) => f.includes(".tmp")), []);
});

test("OpenCode processes creating workspaces at once get one exclusive lease between them", async () => {
  const { spawn } = await import("node:child_process");
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), "ocr-plugin-race-"));
  const stateUrl = new URL("../lib/state.js", import.meta.url).href;
  const script = `
    const state = await import(${JSON.stringify(stateUrl)});
    const start = Number(process.argv[1]);
    while (Date.now() < start) {}
    try { state.acquireLease("p", "race", "w" + process.pid, "exclusive"); console.log("won"); }
    catch (err) { console.log(/leased exclusively|in use/.test(err.message) ? "refused" : "error: " + err.message); }
  `;
  const start = Date.now() + 400;
  const runs = Array.from({ length: 6 }, () =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script, String(start)], {
        env: { ...process.env, XDG_STATE_HOME: shared },
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.on("close", () => resolve(out.trim()));
    }),
  );
  const outcomes = (await Promise.all(runs)).sort();
  assert.deepEqual(outcomes, ["refused", "refused", "refused", "refused", "refused", "won"]);
  assert.equal(fs.existsSync(path.join(shared, "opencode-remote", "leases.json.lock")), false);
});

test("a lock file left by a dead process does not block", () => {
  const lock = path.join(dir, "opencode-remote", "leases.json.lock");
  fs.writeFileSync(lock, "999999999");
  state.acquireLease("p", "after-crash", "w1", "shared");
  assert.equal(fs.existsSync(lock), false);
});

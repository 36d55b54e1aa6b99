// The plugin relies on OpenCode's experimental workspace API as tested with one version: under
// another version it says so in OpenCode's log (and still registers), under that one it is quiet.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

process.env.XDG_STATE_HOME = fs.mkdtempSync(path.join(os.tmpdir(), "ocr-plugin-version-"));
const { default: plugin } = await import("../index.js");

async function load(version) {
  const logs = [];
  const registered = [];
  const input = {
    directory: "/tmp",
    client: {
      _client: { get: async ({ url }) => (url === "/global/health" ? { data: { healthy: true, version } } : {}) },
      app: { log: async ({ body }) => logs.push(body) },
    },
    experimental_workspace: { register: (type, adaptor) => registered.push({ type, adaptor }) },
  };
  // `binary` must exist; this one fails option validation, which is logged separately.
  const hooks = await plugin(input, { binary: "/bin/false" });
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { logs, registered, hooks };
}

test("another OpenCode version gets a warning naming the tested one, and the plugin still works", async () => {
  const { logs, registered, hooks } = await load("1.99.0");
  const warnings = logs.filter((l) => l.level === "warn");
  assert.equal(warnings.length, 1, JSON.stringify(logs));
  assert.match(warnings[0].message, /tested with OpenCode 1\.18\.33; this is 1\.99\.0/);
  assert.deepEqual(registered.map((r) => r.type), ["ssh-provider"]);
  assert.deepEqual(Object.keys(hooks.tool).sort(), ["remote-workspace-create", "remote-workspace-list", "remote-workspace-remove"]);
});

test("the tested OpenCode version gets no warning", async () => {
  const { logs } = await load("1.18.33");
  assert.deepEqual(logs.filter((l) => l.level === "warn"), []);
});

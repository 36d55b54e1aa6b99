// opencode-remote-provider: the OpenCode plugin for remote workspaces over SSH.
//
// It registers the `ssh-provider` workspace adaptor. All real work (resolving hosts, SSH, host
// keys, installing and running the stub, the loopback bridge) happens in the `opencode-remote`
// binary; this module only starts one `opencode-remote bridge` per workspace, hands OpenCode its
// URL, keeps that URL stable across bridge and OpenCode restarts, and relays the few calls the
// bridge makes to the local OpenCode server.
//
// Load it by package (`["opencode-remote-provider", {options}]`) or by path (the directory of
// this file, or a file:// URL to it). Only a default export: OpenCode rejects plugins with
// non-function exports.

import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Bridge } from "./lib/bridge.js";
import * as state from "./lib/state.js";

const TESTED_OPENCODE = "1.18.33";
const ADAPTOR = "ssh-provider";
const PLUGIN_DIR = path.dirname(fileURLToPath(import.meta.url));

// Bridges live as long as this OpenCode process; shared by every instance (directory) that loads
// the plugin.
const bridges = new Map(); // workspaceID -> Bridge
const restarting = new Map(); // workspaceID -> Promise

function findBinary(option) {
  if (option) {
    if (!fs.existsSync(option)) throw new Error(`option "binary": ${option} does not exist`);
    return option;
  }
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, "opencode-remote");
    if (fs.existsSync(candidate)) return candidate;
  }
  // Path-based development registration: the repository's own build output.
  for (const profile of ["release", "debug"]) {
    const candidate = path.resolve(PLUGIN_DIR, "..", "..", "target", profile, "opencode-remote");
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(
    'cannot find the opencode-remote binary: put it on PATH or set the plugin option "binary"',
  );
}

function runBinary(binary, args, input) {
  const result = spawnSync(binary, args, { input, encoding: "utf8", timeout: 15000 });
  if (result.error) throw new Error(`cannot run ${binary}: ${result.error.message}`);
  if (result.status !== 0) {
    const message = (result.stderr ?? "").split("\n").map((l) => l.trim()).filter(Boolean);
    const error = message.reverse().find((l) => l.startsWith("error: "));
    throw new Error(error ? error.slice("error: ".length) : message.join("\n") || `exit ${result.status}`);
  }
  return JSON.parse(result.stdout);
}

export default async function opencodeRemoteProvider(input, options) {
  const opts = options ?? {};
  const api = input.client?._client;
  const log = (level, message) => {
    input.client?.app?.log?.({ body: { service: "opencode-remote", level, message } })?.catch?.(() => {});
  };
  const binary = (() => {
    let found;
    return () => (found ??= findBinary(opts.binary));
  })();
  const optionsJson = JSON.stringify(opts);

  // Invalid options are reported when OpenCode loads the plugin (in its log) and again, to the
  // user, by every workspace creation: naming the bad key, never dropping it silently.
  let optionsError;
  try {
    runBinary(binary(), ["resolve", "--options-stdin", "--validate-only"], optionsJson);
  } catch (err) {
    optionsError = new Error(`opencode-remote-provider options: ${err.message}`);
    log("error", optionsError.message);
  }

  // This relies on OpenCode's experimental workspace API as of 1.18.33.
  api
    ?.get({ url: "/global/health" })
    .then((res) => {
      const version = res?.data?.version;
      if (version && version !== TESTED_OPENCODE) {
        log("warn", `opencode-remote-provider was tested with OpenCode ${TESTED_OPENCODE}; this is ${version}. Remote workspaces use an experimental API and may break.`);
      }
    })
    .catch(() => {});

  async function callLocal(method, urlPath) {
    if (!api) return { status: 503, body: { name: "PluginError", data: { message: "no OpenCode client" } } };
    const fn = method === "POST" ? api.post : method === "DELETE" ? api.delete : api.get;
    const res = await fn.call(api, { url: urlPath });
    return { status: res.response?.status ?? (res.error ? 500 : 200), body: res.data ?? res.error ?? null };
  }

  function bridgeArgs(record, extra) {
    const args = ["bridge", "--provider", record.provider, "--host", record.host,
      "--workspace-id", record.workspaceID, "--project-id", record.projectID,
      "--stdin-config", "--opencode-stdio", "--opencode-directory", record.instanceDirectory];
    if (record.directory) args.push("--directory", record.directory);
    args.push("--log-file", path.join(state.stateDir(), "logs", `${record.workspaceID}.log`));
    return args.concat(extra);
  }

  // Workspace records, cached in memory: target() runs on every forwarded request and must
  // not read files. The files keep them across OpenCode restarts.
  const records = new Map();
  function loadRecord(workspaceID) {
    let record = records.get(workspaceID);
    if (!record) {
      record = state.loadWorkspace(workspaceID);
      if (record) records.set(workspaceID, record);
    }
    return record;
  }
  function saveRecord(workspaceID, record) {
    state.saveWorkspace(workspaceID, record);
    records.set(workspaceID, record);
  }
  function forgetRecord(workspaceID) {
    records.delete(workspaceID);
    state.forgetWorkspace(workspaceID);
  }

  function launch(record, extra) {
    const bridge = new Bridge({
      binary: binary(),
      args: bridgeArgs(record, extra),
      config: { secret: record.secret, options: opts },
      call: callLocal,
      log: (level, message) => { if (process.env.OPENCODE_REMOTE_PLUGIN_DEBUG) log(level, message); },
    });
    bridges.set(record.workspaceID, bridge);
    // A bridge that dies while its workspace exists comes back on the same URL at once; it
    // then reconnects to the host by itself and tells OpenCode to resume syncing.
    bridge.onExit = (code, signal) => {
      if (bridges.get(record.workspaceID) !== bridge || !loadRecord(record.workspaceID)) return;
      log("warn", `bridge for workspace ${record.workspaceID} exited (${code ?? signal}); restarting`);
      setTimeout(() => restart(record.workspaceID).catch((err) => log("error", err.message)), 200);
    };
    return bridge;
  }

  // Starts a bridge again on the workspace's recorded port and secret, without waiting for the
  // host (the URL is known; requests wait for the connection).
  function restart(workspaceID) {
    if (restarting.has(workspaceID)) return restarting.get(workspaceID);
    const task = (async () => {
      const record = loadRecord(workspaceID);
      if (!record) throw new Error(`workspace ${workspaceID} is not known to opencode-remote`);
      let bridge = launch(record, ["--keep-trying", "--listen", `127.0.0.1:${record.port}`]);
      try {
        await bridge.ready;
      } catch (err) {
        if (!/cannot listen/.test(err.message)) throw err;
        // The port was taken meanwhile: a new URL (OpenCode picks it up at its next sync start).
        log("warn", `port ${record.port} is taken; moving workspace ${workspaceID} to a new port`);
        bridge = launch(record, ["--keep-trying"]);
        const info = await bridge.ready;
        record.port = Number(new URL(info.url).port);
        saveRecord(workspaceID, record);
      }
      return bridge;
    })().finally(() => restarting.delete(workspaceID));
    restarting.set(workspaceID, task);
    return task;
  }

  // A lease that cannot be released now (the leases are locked by a stuck process) must not
  // hide the real error or keep a bridge running; the create window lets it expire.
  function releaseQuietly(workspaceID) {
    try {
      state.releaseLease(workspaceID);
    } catch (err) {
      log("error", `cannot release the lease of ${workspaceID}: ${err.message}`);
    }
  }

  function urlOf(record) {
    return `http://127.0.0.1:${record.port}/${record.secret}`;
  }

  const adaptor = {
    name: "SSH host (opencode-remote)",
    description: "Run the workspace on a Linux host over SSH, with a static stub (no OpenCode needed on the host)",

    configure(config) {
      if (optionsError) throw optionsError;
      const extra = config.extra ?? {};
      const args = ["resolve", "--options-stdin"];
      if (extra.provider) args.push("--provider", String(extra.provider));
      if (extra.host) args.push("--host", String(extra.host));
      for (const label of extra.labels ?? []) args.push("--label", String(label));
      const resolved = runBinary(binary(), args, optionsJson);
      const leaseMode = extra.leaseMode ?? resolved.leaseMode ?? "shared";
      if (leaseMode !== "shared" && leaseMode !== "exclusive") {
        throw new Error(`extra.leaseMode must be "shared" or "exclusive", got ${JSON.stringify(leaseMode)}`);
      }
      return {
        ...config,
        extra: {
          ...extra,
          provider: resolved.provider,
          host: resolved.host,
          directory: extra.directory ?? resolved.directory ?? undefined,
          leaseMode,
        },
      };
    },

    async create(config, _env, _from, ctx) {
      // `_env` holds the user's credentials (OPENCODE_AUTH_CONTENT): deliberately unused, so
      // they never reach argv, logs or the host.
      const workspaceID = config.id;
      const extra = config.extra ?? {};
      const record = {
        workspaceID,
        provider: extra.provider,
        host: extra.host,
        directory: extra.directory,
        leaseMode: extra.leaseMode ?? "shared",
        projectID: config.projectID,
        instanceDirectory: ctx?.instance?.directory ?? input.directory,
        secret: crypto.randomBytes(32).toString("hex"),
        port: 0,
      };
      try {
        state.acquireLease(record.provider, record.host, workspaceID, record.leaseMode);
        const bridge = launch(record, []);
        let info;
        try {
          info = await bridge.ready;
        } catch (err) {
          bridges.delete(workspaceID);
          throw new Error(`cannot open workspace on ${record.host}: ${err.message}`);
        }
        record.port = Number(new URL(info.url).port);
        saveRecord(workspaceID, record);
        log("info", `workspace ${workspaceID} on ${record.host}: stub ${info.stub?.version} (${info.stub?.os}/${info.stub?.arch}, kernel ${info.stub?.kernel}) in ${info.connectMs} ms`);
      } catch (err) {
        releaseQuietly(workspaceID);
        // OpenCode keeps the workspace row after a failed create; remove it so no broken
        // workspace stays behind.
        setTimeout(() => {
          api?.delete({ url: `/experimental/workspace/${workspaceID}` }).catch(() => {});
        }, 500);
        throw err;
      }
    },

    // Called on every forwarded request: a map lookup, never SSH work.
    target(config) {
      const record = loadRecord(config.id);
      if (!record) {
        // Unknown (created before this machine's state was lost): a URL that fails fast so the
        // workspace shows as broken instead of OpenCode crashing on a throw.
        return { type: "remote", url: "http://127.0.0.1:9/opencode-remote-unknown-workspace" };
      }
      const bridge = bridges.get(config.id);
      if (!bridge || !bridge.alive()) {
        restart(config.id).catch((err) => log("error", `cannot restart the bridge of ${config.id}: ${err.message}`));
      }
      return { type: "remote", url: urlOf(record) };
    },

    async remove(config) {
      const bridge = bridges.get(config.id);
      bridges.delete(config.id);
      forgetRecord(config.id);
      try {
        releaseQuietly(config.id);
      } finally {
        await bridge?.stop();
      }
    },
  };

  input.experimental_workspace.register(ADAPTOR, adaptor);

  // Tools for the (local) agent.
  const directoryQuery = `?directory=${encodeURIComponent(input.directory ?? "")}`;
  const text = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));
  return {
    tool: {
      "remote-workspace-create": {
        description:
          "Create an OpenCode remote workspace on a configured SSH host (opencode-remote). " +
          "host is a host name or alias from the plugin options; provider is optional (default provider when empty).",
        args: {
          host: { type: "string", description: "host name or alias (empty: first available)" },
          provider: { type: "string", description: "provider name (empty: the default provider)" },
        },
        async execute(args) {
          const extra = {};
          if (args?.host) extra.host = args.host;
          if (args?.provider) extra.provider = args.provider;
          const res = await api.post({ url: `/experimental/workspace${directoryQuery}`, body: { type: ADAPTOR, branch: null, extra } });
          if (res.error) return `failed: ${text(res.error)}`;
          return text(res.data);
        },
      },
      "remote-workspace-list": {
        description: "List OpenCode remote workspaces on SSH hosts with their connection status.",
        args: {},
        async execute() {
          const [rows, statuses] = await Promise.all([
            api.get({ url: `/experimental/workspace${directoryQuery}` }),
            api.get({ url: `/experimental/workspace/status${directoryQuery}` }),
          ]);
          const status = new Map((statuses.data ?? []).map((s) => [s.workspaceID, s.status]));
          const ours = (rows.data ?? []).filter((w) => w.type === ADAPTOR);
          if (ours.length === 0) return "no ssh-provider workspaces";
          return ours
            .map((w) => `${w.id}  ${w.extra?.provider ?? "?"}/${w.extra?.host ?? "?"}  ${status.get(w.id) ?? "not syncing"}  ${w.extra?.directory ?? "~"}`)
            .join("\n");
        },
      },
      "remote-workspace-remove": {
        description: "Remove an OpenCode remote workspace (by id, wrk_…): stops its SSH bridge and releases the host.",
        args: {
          id: { type: "string", description: "workspace id (wrk_…)" },
        },
        async execute(args) {
          if (!args?.id || !String(args.id).startsWith("wrk")) return "an id of the form wrk_… is required";
          const res = await api.delete({ url: `/experimental/workspace/${args.id}${directoryQuery}` });
          if (res.error) return `failed: ${text(res.error)}`;
          return res.data ? `removed ${args.id}` : `no workspace ${args.id}`;
        },
      },
    },
  };
}

// Plugin state on the laptop: one small JSON file per workspace (the bridge's port and secret, so
// a workspace keeps its URL across bridge and OpenCode restarts) and the host leases.
// Files are written atomically (temp file, fsync, rename) with mode 0600 in a 0700 directory.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";

export function stateDir() {
  const base = process.env.XDG_STATE_HOME || path.join(process.env.HOME || os.homedir(), ".local", "state");
  return path.join(base, "opencode-remote");
}

function ensureDir(dir) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export function writeJsonAtomic(file, value) {
  ensureDir(path.dirname(file));
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  const fd = fs.openSync(tmp, "w", 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(value, null, 2) + "\n");
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    if (err.code === "ENOENT") return undefined;
    throw new Error(`cannot read ${file}: ${err.message}`);
  }
}

function safeName(id) {
  return String(id).replace(/[^A-Za-z0-9_-]/g, "_");
}

export function workspaceFile(workspaceID) {
  return path.join(stateDir(), "workspaces", `${safeName(workspaceID)}.json`);
}

export function loadWorkspace(workspaceID) {
  return readJson(workspaceFile(workspaceID));
}

export function saveWorkspace(workspaceID, record) {
  writeJsonAtomic(workspaceFile(workspaceID), record);
}

export function forgetWorkspace(workspaceID) {
  fs.rmSync(workspaceFile(workspaceID), { force: true });
}

// Leases: which workspaces use which host, and how. An exclusive lease admits one workspace;
// shared leases admit any number (but not alongside an exclusive one).
function leasesFile() {
  return path.join(stateDir(), "leases.json");
}

function hostKey(provider, host) {
  return `${provider}/${host}`;
}

// Longer than any create can take (SSH connect, install, handshake).
const PENDING_CREATE_MS = 120_000;

// Several OpenCode processes may share the state directory: every read-modify-write of the
// leases file holds an exclusive lock file. The lock appears whole (a temp file with our pid,
// hard-linked into place), is only removed by its owner, and is broken when its owner is dead or
// it is older than any update can take.
const LOCK_WAIT_MS = 5_000;
const LOCK_STALE_MS = 10_000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function lockIsStale(lock) {
  let stat;
  let pid;
  try {
    stat = fs.statSync(lock);
    pid = Number.parseInt(fs.readFileSync(lock, "utf8"), 10);
  } catch (err) {
    if (err.code === "ENOENT") return false; // Released meanwhile: just retry.
    throw err;
  }
  if (Date.now() - stat.mtimeMs > LOCK_STALE_MS) return true;
  if (!Number.isInteger(pid) || pid <= 0) return false; // Cannot tell yet: wait for the age.
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return err.code === "ESRCH";
  }
}

// Moves a stale lock out of the way; only one of several processes breaking it at once wins
// the rename, and a lock taken anew meanwhile (another inode) is left alone.
function breakLock(lock) {
  const aside = `${lock}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.stale`;
  let before;
  try {
    before = fs.statSync(lock);
    fs.renameSync(lock, aside);
  } catch (err) {
    if (err.code === "ENOENT") return;
    throw err;
  }
  const moved = fs.statSync(aside);
  if (moved.ino !== before.ino) {
    // Someone took the lock between our stat and rename: put theirs back.
    try {
      fs.linkSync(aside, lock);
    } catch {
      // A third process holds it now; theirs wins, ours was the fresh one anyway.
    }
  }
  fs.rmSync(aside, { force: true });
}

function withLeasesLock(fn) {
  const lock = `${leasesFile()}.lock`;
  ensureDir(path.dirname(lock));
  const mine = `${lock}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  fs.writeFileSync(mine, String(process.pid), { mode: 0o600 });
  const deadline = Date.now() + LOCK_WAIT_MS;
  try {
    for (;;) {
      try {
        fs.linkSync(mine, lock);
        break;
      } catch (err) {
        if (err.code !== "EEXIST") throw err;
      }
      if (lockIsStale(lock)) {
        breakLock(lock);
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`the host leases are locked by another OpenCode process (${lock}); try again`);
      }
      Atomics.wait(sleeper, 0, 0, 5);
    }
    try {
      return fn();
    } finally {
      // Only our own lock (same inode as our temp file) is removed.
      try {
        if (fs.statSync(lock).ino === fs.statSync(mine).ino) fs.rmSync(lock, { force: true });
      } catch {
        // Already gone.
      }
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

export function acquireLease(provider, host, workspaceID, mode) {
  return withLeasesLock(() => acquireLeaseLocked(provider, host, workspaceID, mode));
}

function acquireLeaseLocked(provider, host, workspaceID, mode) {
  const leases = readJson(leasesFile()) ?? {};
  const key = hostKey(provider, host);
  // A holder counts while its workspace exists, or while its create may still be running (the
  // record is saved only once the bridge is up); one left by a crashed create expires.
  const live = (h) => loadWorkspace(h.workspaceID) || Date.now() - (h.since ?? 0) < PENDING_CREATE_MS;
  const holders = (leases[key] ?? []).filter((h) => h.workspaceID !== workspaceID && live(h));
  const exclusive = holders.find((h) => h.mode === "exclusive");
  if (exclusive) {
    throw new Error(
      `host ${host} (provider ${provider}) is leased exclusively by workspace ${exclusive.workspaceID}; ` +
        `remove that workspace first or use leaseMode "shared"`,
    );
  }
  if (mode === "exclusive" && holders.length > 0) {
    throw new Error(
      `host ${host} (provider ${provider}) is in use by workspace(s) ${holders.map((h) => h.workspaceID).join(", ")}; ` +
        `an exclusive lease needs the host to itself`,
    );
  }
  holders.push({ workspaceID, mode, since: Date.now() });
  leases[key] = holders;
  writeJsonAtomic(leasesFile(), leases);
}

export function releaseLease(workspaceID) {
  withLeasesLock(() => releaseLeaseLocked(workspaceID));
}

function releaseLeaseLocked(workspaceID) {
  const leases = readJson(leasesFile());
  if (!leases) return;
  for (const key of Object.keys(leases)) {
    leases[key] = leases[key].filter((h) => h.workspaceID !== workspaceID);
    if (leases[key].length === 0) delete leases[key];
  }
  writeJsonAtomic(leasesFile(), leases);
}

export function leases() {
  return readJson(leasesFile()) ?? {};
}

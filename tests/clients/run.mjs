#!/usr/bin/env node
// Real Kinto clients against a real Syncto.
//
// Starts the `syncto` binary on 127.0.0.1 in front of either the fake Token
// Server + Sync node (`fake_upstream` example, the default) or the real Firefox
// Sync server (`--peer`: syncstorage-rs started by peer.sh, with OAuth tokens
// minted by `peer.sh token`), then drives it with the published npm packages
// kinto-http 5.3.0 and kinto (Kinto.js) 17.1.1, and (when KINTO_PYTHON is set)
// kinto-http.py 11.11. Prints one line per check (`ok - name` / `not ok - name:
// reason`; `ok - name # SKIP reason` for a check that cannot run here), `# …`
// lines with the measured write throughput, then `N passed, S skipped, M
// failed`; exits non-zero when anything failed. Diagnostics (request traces,
// server logs) go to stderr.
//
// Usage: node run.mjs [--syncto PATH] [--fake PATH] [--peer] [--form bucket|header] [--no-skip]
//   env SYNCTO_BIN / FAKE_UPSTREAM_BIN work too; defaults are
//   ../../target/debug/syncto and ../../target/debug/examples/fake_upstream
//   relative to this file.
//   --peer (or KINTO_PEER=1): no fake; KINTO_PEER_TOKEN_URL is the token server
//   and KINTO_PEER_USERS a JSON array of at least 11 `peer.sh token … --json`
//   objects ({"Authorization", "X-KeyID", …}), one distinct user each.
//   --form (or KINTO_KEYID_FORM): how requests name the key id: `bucket` (the
//   bucket id is the key id, the default) or `header` (bucket `syncto` plus an
//   X-KeyID header).
//   KINTO_PYTHON: a Python with kinto-http 11.11 installed, for kinto_http_py.py.
//   --no-skip (or KINTO_NO_SKIP=1, as .ci/run sets): a check that would be
//   skipped fails instead, so a run that did not check everything never passes.

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const OVERALL_TIMEOUT_MS = 180_000;
const CHECK_TIMEOUT_MS = 30_000;
const START_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------- options

function option(flag, envName, fallback) {
  const i = process.argv.indexOf(flag);
  if (i !== -1 && process.argv[i + 1]) return path.resolve(process.argv[i + 1]);
  if (process.env[envName]) return path.resolve(process.env[envName]);
  return path.resolve(here, fallback);
}
const SYNCTO_BIN = option("--syncto", "SYNCTO_BIN", "../../target/debug/syncto");
// Syncto with a pause between a batch's read of its records and its collapsed writes
// (examples/collapse_hook.rs): another device writes in that moment.
const HOOKED_BIN = option("--hooked", "SYNCTO_HOOKED_BIN", "../../target/debug/examples/collapse_hook");
const FAKE_BIN = option("--fake", "FAKE_UPSTREAM_BIN", "../../target/debug/examples/fake_upstream");
const PEER = process.argv.includes("--peer") || process.env.KINTO_PEER === "1";
const FORM = (() => {
  const i = process.argv.indexOf("--form");
  return (i !== -1 && process.argv[i + 1]) || process.env.KINTO_KEYID_FORM || "bucket";
})();
const PYTHON = process.env.KINTO_PYTHON || "";
const NO_SKIP = process.argv.includes("--no-skip") || process.env.KINTO_NO_SKIP === "1";
// One distinct Sync user per group of checks, so they don't see each other's records.
const ROLES = ["http", "sync", "conflict", "sequential", "concurrent", "push", "python", "bulk", "race-on", "race-off", "race-hooked"];

// ---------------------------------------------------------------- tracing
// Both libraries bind `globalThis.fetch` when a client is constructed, so
// wrapping it here (before any client exists) records every request they
// send, including the Next-Page URLs they follow. Nothing is altered.

const realFetch = globalThis.fetch;
const trace = [];
// Set by a check: run once just before the next POST /batch is sent (another device's
// writes between a sync's pull and its push); and given each batch's requests and answer.
let beforeBatch = null;
let batchTap = null;
globalThis.fetch = async (url, init = {}) => {
  const entry = {
    method: (init.method || "GET").toUpperCase(),
    url: String(url),
    headers: { ...(init.headers || {}) },
    body: typeof init.body === "string" ? init.body : undefined,
    status: undefined,
  };
  const isBatch = entry.method === "POST" && entry.url.endsWith("/batch");
  if (isBatch && beforeBatch) {
    const h = beforeBatch;
    beforeBatch = null;
    await h();
  }
  trace.push(entry);
  const res = await realFetch(url, init);
  entry.status = res.status;
  if (isBatch && batchTap && res.status === 200) batchTap(JSON.parse(entry.body).requests, await res.clone().json());
  return res;
};

// Loaded after the wrapper on purpose.
let KintoHttp, Kinto, Memory;
try {
  KintoHttp = require("kinto-http").default;
  Kinto = require("kinto").default;
  Memory = require("kinto/lib/cjs/adapters/memory").default;
} catch (e) {
  console.log(`not ok - load kinto-http and kinto: ${e.message.split("\n")[0]} (run \`PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci\` in ${here})`);
  console.log("0 passed, 0 skipped, 1 failed");
  process.exit(1);
}

// ---------------------------------------------------------------- children

const children = new Set();
let syncto = null;
let fake = null;

function killAll(signal = "SIGKILL") {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}
process.on("exit", () => killAll());
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    killAll();
    console.log(`not ok - run to the end: interrupted by ${sig}`);
    console.log(`${passed} passed, ${skipped} skipped, ${failed + 1} failed`);
    process.exit(130);
  });
}

function exited(child, ms) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resolve({ code: child.exitCode, signal: child.signalCode });
    }
    const t = setTimeout(() => resolve(null), ms);
    child.once("exit", (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

function keepTail(child, name) {
  const lines = [];
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    for (const l of chunk.split("\n")) if (l) lines.push(l);
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  });
  child.logTail = (n = 40) => lines.slice(-n).map((l) => `# ${name}: ${l}`).join("\n");
}

function startFake() {
  if (!fs.existsSync(FAKE_BIN)) {
    throw new Error(`${FAKE_BIN} missing: run \`cargo build --bin syncto --example fake_upstream\``);
  }
  const child = spawn(FAKE_BIN, ["--seconds", "600"], { stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  keepTail(child, "fake_upstream");
  return new Promise((resolve, reject) => {
    const urls = {};
    let buf = "";
    const t = setTimeout(() => reject(new Error("fake_upstream printed no TOKEN_URL/SYNC_URL")), START_TIMEOUT_MS);
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`fake_upstream exited early (${code})\n${child.logTail()}`));
    });
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) !== -1) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        const m = /^(TOKEN_URL|SYNC_URL)=(.+)$/.exec(line);
        if (m) urls[m[1]] = m[2];
      }
      if (urls.TOKEN_URL && urls.SYNC_URL) {
        clearTimeout(t);
        child.removeAllListeners("exit");
        resolve({ child, tokenUrl: urls.TOKEN_URL });
      }
    });
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `settings`: SYNCTO_* variables over the defaults here (batches of 25, writes on tabs);
// `bin`: the binary (HOOKED_BIN talks on its standard input and output).
async function startSyncto(tokenUrl, { settings = {}, bin = SYNCTO_BIN, name = "syncto" } = {}) {
  if (!fs.existsSync(bin)) {
    throw new Error(`${bin} missing: run \`cargo build --bin syncto --example collapse_hook\``);
  }
  // Only our settings: nothing inherited from the caller's SYNCTO_* variables.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SYNCTO_")));
  Object.assign(env, {
    SYNCTO_TOKEN_SERVER_URL: tokenUrl,
    SYNCTO_RECORD_TABS_PUT_ENABLED: "true",
    SYNCTO_RECORD_TABS_DELETE_ENABLED: "true",
    SYNCTO_BATCH_MAX_REQUESTS: "25",
    ...settings,
  });
  const talks = bin === HOOKED_BIN;
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(bin, ["--bind", `127.0.0.1:${port}`], {
      stdio: [talks ? "pipe" : "ignore", talks ? "pipe" : "ignore", "pipe"],
      env,
      cwd: os.tmpdir(),
    });
    children.add(child);
    keepTail(child, name);
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
      try {
        const r = await realFetch(`${base}/v1/__lbheartbeat__`, { signal: AbortSignal.timeout(1000) });
        if (r.status === 200) return { child, base };
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    lastError = new Error(`syncto did not answer /v1/__lbheartbeat__ on port ${port}\n${child.logTail()}`);
    child.kill("SIGKILL");
    await exited(child, 2000);
    // A lost race for the port: try another one.
  }
  throw lastError;
}

// ---------------------------------------------------------------- checks

let passed = 0;
let skipped = 0;
let failed = 0;

// Tokens never reach the output: clients copy the Authorization header into batch bodies.
function redact(s) {
  return String(s).replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, "$1…");
}

function oneLine(s) {
  return redact(s).replace(/\s+/g, " ").trim();
}

function describe(e) {
  if (e && e.response && typeof e.response.status === "number") {
    return `${e.message} [status ${e.response.status}, body ${JSON.stringify(e.data)}]`;
  }
  return e && e.message ? e.message : String(e);
}

class CheckFailed extends Error {}
function assert(cond, msg) {
  if (!cond) throw new CheckFailed(msg);
}
// JSON with sorted object keys: field order is not part of the protocol.
function canonical(v) {
  return JSON.stringify(v, (_, x) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]]))
      : x,
  );
}
function eq(actual, expected, what) {
  const a = canonical(actual);
  const b = canonical(expected);
  assert(a === b, `${what}: expected ${b}, got ${a}`);
}
async function rejects(promise, what) {
  try {
    const v = await promise;
    throw new CheckFailed(`${what}: expected an error, got ${JSON.stringify(v)}`);
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    return e;
  }
}

function traceText(from) {
  return trace
    .slice(from)
    .map((t) => {
      const text = t.body && redact(t.body);
      const body = text && text.length > 300 ? `${text.slice(0, 300)}…` : text;
      return `#   ${t.method} ${t.url} -> ${t.status ?? "no response"}${body ? ` body=${body}` : ""}`;
    })
    .join("\n");
}

// Set by a check that cannot run here (prints `ok - name # SKIP reason`, TAP style).
let skip = null;

async function check(name, fn) {
  const from = trace.length;
  let timer;
  skip = null;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS / 1000}s`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    if (!skip) {
      passed++;
      console.log(`ok - ${name}`);
    } else if (NO_SKIP) {
      failed++;
      console.log(`not ok - ${name}: skipped (${skip}), and skips are failures here (--no-skip, KINTO_NO_SKIP=1)`);
    } else {
      skipped++;
      console.log(`ok - ${name} # SKIP ${skip}`);
    }
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${oneLine(describe(e))}`);
    process.stderr.write(`# requests of "${name}":\n${traceText(from)}\n`);
    if (syncto) process.stderr.write(`${syncto.logTail(20)}\n`);
  } finally {
    clearTimeout(timer);
  }
}

const payload = (v) => JSON.stringify({ ciphertext: Buffer.from(v).toString("base64"), IV: "AAAAAAAAAAAAAAAAAAAAAA==", hmac: "00" });
const newId = () => crypto.randomUUID();
function keyId(n) {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `${n}-${Buffer.from(bytes).toString("base64url")}`;
}

// A user as the clients present it: the headers to send and the bucket to use.
function user(authorization, kid) {
  const header = FORM === "header";
  return {
    kid,
    bucket: header ? "syncto" : kid,
    headers: header ? { Authorization: authorization, "X-KeyID": kid } : { Authorization: authorization },
  };
}

// The fake accepts any bearer token; the real token server only those peer.sh minted.
function users() {
  if (!PEER) {
    const fixed = { http: keyId(4321), sync: "1234-Yw3NKWbEM2aRElRIu7JbTw", conflict: keyId(77) };
    return Object.fromEntries(ROLES.map((r, i) => [r, user(`Bearer kinto-${r}-token`, fixed[r] || keyId(5000 + i))]));
  }
  let given;
  try {
    given = JSON.parse(process.env.KINTO_PEER_USERS || "[]");
  } catch (e) {
    throw new Error(`KINTO_PEER_USERS is not JSON: ${e.message}`);
  }
  if (!Array.isArray(given) || given.length < ROLES.length) {
    throw new Error(`KINTO_PEER_USERS must be a JSON array of ${ROLES.length} \`peer.sh token … --json\` objects`);
  }
  return Object.fromEntries(ROLES.map((r, i) => [r, user(given[i].Authorization, given[i]["X-KeyID"])]));
}

// `200×14, 503×26`
function tally(statuses) {
  const n = new Map();
  for (const s of statuses) n.set(s, (n.get(s) || 0) + 1);
  return [...n.entries()]
    .sort((a, b) => String(a[0]).localeCompare(String(b[0])))
    .map(([s, c]) => `${s}×${c}`)
    .join(", ");
}
const is2xx = (s) => s >= 200 && s < 300;
function rate(writes, ms) {
  return `${(writes / (ms / 1000)).toFixed(1)} writes/s`;
}
// A measurement line (the write throughput figures of the report).
function measured(text) {
  console.log(`# ${text}`);
}

async function runChecks(base, who) {
  const remote = `${base}/v1`;
  const http = who.http;

  const client = new KintoHttp(remote, { headers: http.headers });
  const tabs = client.bucket(http.bucket).collection("tabs");
  const five = [];

  await check("kinto-http fetchServerInfo/fetchServerSettings: batch_max_requests is 25", async () => {
    const info = await client.fetchServerInfo();
    eq(info.settings && info.settings.batch_max_requests, 25, "info.settings.batch_max_requests");
    assert(typeof info.http_api_version === "string" && /^1\.\d+$/.test(info.http_api_version), `http_api_version ${info.http_api_version}`);
    eq(info.url, `${remote}/`, "info.url");
    const settings = await client.fetchServerSettings();
    eq(settings.batch_max_requests, 25, "fetchServerSettings().batch_max_requests");
  });

  await check("kinto-http listRecords: empty collection, then 5 records with the ETag as last_modified", async () => {
    const empty = await tabs.listRecords();
    eq(empty.data, [], "data of an empty collection");
    assert(/^\d+$/.test(String(empty.last_modified)), `last_modified of an empty collection: ${empty.last_modified}`);
    for (let i = 0; i < 5; i++) {
      const { data } = await tabs.createRecord({ id: newId(), payload: payload(`record ${i}`), sortindex: i }, { safe: true });
      five.push(data);
    }
    const list = await tabs.listRecords();
    eq(list.data.length, 5, "number of records");
    const newest = Math.max(...five.map((r) => r.last_modified));
    eq(list.last_modified, String(newest), "last_modified (ETag) = newest record's last_modified");
    assert(Number(list.last_modified) > Number(empty.last_modified), "ETag did not grow after writes");
    // Default sort is -last_modified: newest first.
    eq(list.data.map((r) => r.id), [...five].reverse().map((r) => r.id), "ids in -last_modified order");
    for (const r of list.data) {
      const mine = five.find((f) => f.id === r.id);
      eq(r, mine, `record ${r.id}`);
    }
  });

  await check("kinto-http listRecords({limit: 2, pages: Infinity}) follows Next-Page to all 5", async () => {
    const from = trace.length;
    const list = await tabs.listRecords({ limit: 2, pages: Infinity });
    eq(list.data.map((r) => r.id).sort(), five.map((r) => r.id).sort(), "ids over all pages");
    eq(list.hasNextPage, false, "hasNextPage after the last page");
    const gets = trace.slice(from).filter((t) => t.method === "GET");
    eq(gets.length, 3, "pages fetched (2 + 2 + 1)");
    for (const g of gets.slice(1)) {
      assert(g.url.startsWith(`${remote}/buckets/${http.bucket}/collections/tabs/records?`), `Next-Page is not an absolute URL of the list: ${g.url}`);
      assert(/[?&]_token=/.test(g.url) && /[?&]_limit=2(&|$)/.test(g.url), `Next-Page lacks _token/_limit: ${g.url}`);
    }
  });

  await check("kinto-http getRecord(id)", async () => {
    const want = five[2];
    const { data } = await tabs.getRecord(want.id);
    eq(data, want, "record");
  });

  let created;
  await check("kinto-http createRecord({safe: true}): 201, then 412 for the same id", async () => {
    const rec = { id: newId(), payload: payload("created safely") };
    const from = trace.length;
    const { data } = await tabs.createRecord(rec, { safe: true });
    created = data;
    eq(data.id, rec.id, "id");
    eq(data.payload, rec.payload, "payload");
    assert(Number.isInteger(data.last_modified), `last_modified ${data.last_modified}`);
    const put = trace.slice(from).find((t) => t.method === "PUT");
    eq(put && put.headers["If-None-Match"], "*", "If-None-Match sent by kinto-http");
    eq(put && put.status, 201, "HTTP status of a create");
    const e = await rejects(tabs.createRecord({ ...rec, payload: payload("again") }, { safe: true }), "second create");
    eq(e.response && e.response.status, 412, "status of the second create");
    eq(e.data && e.data.errno, 114, "errno");
    eq(e.data && e.data.details && e.data.details.existing, created, "details.existing");
  });

  await check("kinto-http updateRecord({safe: true}): stale last_modified → 412 with details.existing; current → ok", async () => {
    assert(created, "needs the record of the previous check");
    const stale = created.last_modified - 10;
    const e = await rejects(
      tabs.updateRecord({ id: created.id, payload: payload("stale update") }, { safe: true, last_modified: stale }),
      "stale update",
    );
    eq(e.response && e.response.status, 412, "status of a stale update");
    eq(e.data && e.data.errno, 114, "errno");
    eq(e.data && e.data.details && e.data.details.existing, created, "details.existing (the current record)");
    const { data } = await tabs.updateRecord(
      { id: created.id, payload: payload("fresh update") },
      { safe: true, last_modified: created.last_modified },
    );
    eq(data.payload, payload("fresh update"), "payload after the update");
    assert(data.last_modified > created.last_modified, `last_modified did not grow: ${data.last_modified}`);
    created = data;
    eq((await tabs.getRecord(created.id)).data, created, "record read back");
  });

  await check("kinto-http deleteRecord({safe: true, last_modified}): deleted: true, then 404", async () => {
    assert(created, "needs the record of the previous check");
    const { data } = await tabs.deleteRecord(created.id, { safe: true, last_modified: created.last_modified });
    eq(data.id, created.id, "id");
    eq(data.deleted, true, "deleted");
    assert(Number.isInteger(data.last_modified) && data.last_modified > created.last_modified, `tombstone last_modified ${data.last_modified}`);
    const e = await rejects(tabs.getRecord(created.id), "get after delete");
    eq(e.response && e.response.status, 404, "status");
    eq(e.data && e.data.errno, 110, "errno");
  });

  await check("kinto-http batch of 30 creates is sent as 25 + 5 and all records exist", async () => {
    const before = (await tabs.listRecords({ pages: Infinity })).data;
    const recs = Array.from({ length: 30 }, (_, i) => ({ id: newId(), payload: payload(`batch ${i}`) }));
    const from = trace.length;
    const responses = await tabs.batch(
      (b) => {
        for (const r of recs) b.createRecord(r);
      },
      { safe: true },
    );
    const posts = trace.slice(from).filter((t) => t.method === "POST" && t.url === `${remote}/batch`);
    eq(posts.map((p) => JSON.parse(p.body).requests.length), [25, 5], "requests per POST /batch");
    eq(posts.map((p) => p.status), [200, 200], "batch statuses");
    eq(responses.length, 30, "sub-responses");
    eq(responses.map((r) => r.status), recs.map(() => 201), "sub-response statuses");
    eq(responses.map((r) => r.body.data.id), recs.map((r) => r.id), "sub-response ids in request order");
    const after = (await tabs.listRecords({ pages: Infinity })).data;
    eq(after.length, before.length + 30, "records after the batch");
    const ids = new Set(after.map((r) => r.id));
    assert(recs.every((r) => ids.has(r.id)), "some batched records are missing");
  });

  await check("Kinto.js sync(): push, pull, conflict + resolve, remote delete keeps other devices syncing", async () => {
    const u = who.sync;
    const device = () =>
      new Kinto({
        remote,
        bucket: u.bucket,
        headers: u.headers,
        adapter: (name, options) => new Memory(name, options),
      });
    const a = device().collection("tabs");
    const b = device().collection("tabs");
    const server = new KintoHttp(remote, { headers: u.headers }).bucket(u.bucket).collection("tabs");

    // A creates two records and pushes them.
    const { data: r1 } = await a.create({ payload: payload("tab one") });
    const { data: r2 } = await a.create({ payload: payload("tab two") });
    let res = await a.sync();
    assert(res.ok, `A's first sync not ok: ${JSON.stringify(res)}`);
    eq(res.published.map((r) => r.id).sort(), [r1.id, r2.id].sort(), "A published");
    const onServer = (await server.listRecords()).data;
    eq(onServer.map((r) => r.id).sort(), [r1.id, r2.id].sort(), "records on the server after A's push");
    for (const r of onServer) eq(Object.keys(r).sort(), ["id", "last_modified", "payload"], `fields of ${r.id} on the server`);

    // B pulls them.
    res = await b.sync();
    assert(res.ok, `B's first sync not ok: ${JSON.stringify(res)}`);
    eq(res.created.map((r) => r.id).sort(), [r1.id, r2.id].sort(), "B created from the pull");
    const b1 = (await b.get(r1.id)).data;
    eq(b1.payload, r1.payload, "B's copy of r1");

    // Both change r1; A syncs first, B gets a conflict.
    const a1 = (await a.get(r1.id)).data;
    await a.update({ ...a1, payload: payload("tab one, changed on A") });
    await b.update({ ...b1, payload: payload("tab one, changed on B") });
    res = await a.sync();
    assert(res.ok, `A's update sync not ok: ${JSON.stringify(res)}`);
    eq(res.published.map((r) => r.id), [r1.id], "A published its update");
    res = await b.sync();
    eq(res.ok, false, "B's sync ok flag with a conflict");
    eq(res.conflicts.length, 1, "B's conflicts");
    const conflict = res.conflicts[0];
    eq(conflict.remote && conflict.remote.payload, payload("tab one, changed on A"), "conflict.remote.payload");
    eq(conflict.local && conflict.local.payload, payload("tab one, changed on B"), "conflict.local.payload");
    await b.resolve(conflict, conflict.remote);
    res = await b.sync();
    assert(res.ok, `B's sync after resolving not ok: ${JSON.stringify(res)}`);
    eq((await b.get(r1.id)).data.payload, payload("tab one, changed on A"), "B's r1 after resolution");
    eq((await b.get(r1.id)).data._status, "synced", "B's r1 status after resolution");

    // A deletes r2 and syncs: the DELETE reaches the server.
    await a.delete(r2.id);
    res = await a.sync();
    assert(res.ok, `A's delete sync not ok: ${JSON.stringify(res)}`);
    eq(res.published.map((r) => [r.id, r.deleted]), [[r2.id, true]], "A published the deletion");
    const e = await rejects(server.getRecord(r2.id), "r2 after A's delete");
    eq(e.response && e.response.status, 404, "r2 on the server after A's delete");

    // B's next sync must still succeed (no "Server has been flushed"). Sync
    // keeps no tombstones, so B does not learn of the deletion: Firefox Sync
    // clients propagate deletions as tombstone records they write themselves.
    res = await b.sync();
    assert(res.ok, `B's sync after the remote delete not ok: ${JSON.stringify(res)}`);
    // And A keeps syncing too.
    res = await a.sync();
    assert(res.ok, `A's sync after its delete not ok: ${JSON.stringify(res)}`);
  });

  await check("Kinto.js sync(): pushes refused with 412 (update and delete) become conflicts with the server's record", async () => {
    // Another user, so the previous check's state does not matter.
    const { bucket: kid, headers } = who.conflict;
    const server = new KintoHttp(remote, { headers }).bucket(kid).collection("tabs");
    // Someone else writes between this device's pull and its push: the hook
    // runs inside sync(), after the records GET and before the batch.
    let meddle = null;
    const c = new Kinto({ remote, bucket: kid, headers, adapter: (name, options) => new Memory(name, options) }).collection("tabs", {
      hooks: {
        "incoming-changes": [
          async (changes) => {
            if (meddle) {
              const m = meddle;
              meddle = null;
              await m();
            }
            return changes;
          },
        ],
      },
    });
    const { data: x } = await c.create({ payload: payload("x") });
    const { data: y } = await c.create({ payload: payload("y") });
    let res = await c.sync();
    assert(res.ok, `first sync not ok: ${JSON.stringify(res)}`);
    const localX = (await c.get(x.id)).data;
    const localY = (await c.get(y.id)).data;
    await c.update({ ...localX, payload: payload("x, changed here") });
    await c.delete(y.id);
    const elsewhere = {};
    meddle = async () => {
      elsewhere.x = (await server.updateRecord({ id: x.id, payload: payload("x, changed elsewhere") })).data;
      elsewhere.y = (await server.updateRecord({ id: y.id, payload: payload("y, changed elsewhere") })).data;
    };
    const from = trace.length;
    res = await c.sync();
    assert(elsewhere.x && elsewhere.y, "the concurrent writes did not happen");
    const batch = trace.slice(from).find((t) => t.method === "POST" && t.url === `${remote}/batch`);
    assert(batch, "no batch was sent");
    const sent = JSON.parse(batch.body).requests.map((r) => [r.method, r.path, r.headers["If-Match"]]).sort();
    eq(
      sent,
      [
        ["DELETE", `/buckets/${kid}/collections/tabs/records/${y.id}`, `"${localY.last_modified}"`],
        ["PUT", `/buckets/${kid}/collections/tabs/records/${x.id}`, `"${localX.last_modified}"`],
      ],
      "batched requests (method, path, If-Match)",
    );
    eq(res.ok, false, "ok flag with conflicts");
    eq(res.errors, [], "errors");
    const byId = Object.fromEntries(res.conflicts.map((k) => [k.remote ? k.remote.id : "?", k]));
    eq(Object.keys(byId).sort(), [x.id, y.id].sort(), "conflicts (by remote id)");
    eq(byId[x.id].remote, elsewhere.x, "remote side of the update conflict");
    eq(byId[y.id].remote, elsewhere.y, "remote side of the delete conflict");
    // This device's update wins, the other side's update of y wins.
    await c.resolve(byId[x.id], byId[x.id].local);
    await c.resolve(byId[y.id], byId[y.id].remote);
    res = await c.sync();
    assert(res.ok, `sync after resolving not ok: ${JSON.stringify(res)}`);
    eq((await server.getRecord(x.id)).data.payload, payload("x, changed here"), "x on the server");
    eq((await server.getRecord(y.id)).data.payload, payload("y, changed elsewhere"), "y on the server");
    eq((await c.get(y.id)).data.payload, payload("y, changed elsewhere"), "y on this device");
  });

  await check("kinto-http listRecords({fields: [\"payload\"]}): only id, last_modified and payload", async () => {
    const { data } = await tabs.listRecords({ fields: ["payload"], pages: Infinity });
    assert(data.length > 0, "no records to look at");
    for (const r of data) eq(Object.keys(r).sort(), ["id", "last_modified", "payload"], `fields of ${r.id}`);
    const withIndex = (await tabs.listRecords({ pages: Infinity })).data.find((r) => r.sortindex !== undefined);
    assert(withIndex, "no record with a sortindex (set by the 5-record check)");
  });

  await check("kinto-http bucket.listCollections() and getData(): the user's collections and the bucket", async () => {
    const bucket = client.bucket(http.bucket);
    const list = await tabs.listRecords();
    const { data } = await bucket.listCollections();
    const mine = data.find((c) => c.id === "tabs");
    assert(mine, `tabs is not listed: ${JSON.stringify(data)}`);
    eq(Object.keys(mine).sort(), ["id", "last_modified"], "fields of a collection");
    eq(String(mine.last_modified), list.last_modified, "tabs' last_modified = its records list ETag");
    const info = await bucket.getData();
    eq(info.id, http.bucket, "bucket id");
    eq(info.last_modified, Math.max(...data.map((c) => c.last_modified)), "bucket last_modified = newest collection");
  });

  await check("kinto-http: 40 sequential createRecord by one client → 40 × 2xx, 40 listed", async () => {
    const u = who.sequential;
    const coll = new KintoHttp(remote, { headers: u.headers }).bucket(u.bucket).collection("tabs");
    const from = trace.length;
    const t0 = performance.now();
    for (let i = 0; i < 40; i++) {
      try {
        await coll.createRecord({ id: newId(), payload: payload(`sequential ${i}`) });
      } catch {
        // counted from the trace below
      }
    }
    const ms = performance.now() - t0;
    const statuses = trace.slice(from).filter((t) => t.method === "PUT").map((t) => t.status ?? "no response");
    const ok = statuses.filter(is2xx).length;
    measured(`kinto-http 40 sequential writes: ${ms.toFixed(0)} ms, ${rate(ok, ms)} (${ok} of 40 succeeded; ${tally(statuses)})`);
    const listed = (await coll.listRecords({ pages: Infinity })).data.length;
    assert(statuses.length === 40 && ok === 40 && listed === 40, `statuses ${tally(statuses)}; ${listed} of 40 listed`);
  });

  await check("kinto-http: 4 concurrent writers of one user, 10 writes each → 40 × 2xx, 40 listed", async () => {
    const u = who.concurrent;
    const from = trace.length;
    const t0 = performance.now();
    await Promise.all(
      [0, 1, 2, 3].map(async (w) => {
        const coll = new KintoHttp(remote, { headers: u.headers }).bucket(u.bucket).collection("tabs");
        for (let i = 0; i < 10; i++) {
          try {
            await coll.createRecord({ id: newId(), payload: payload(`writer ${w} write ${i}`) });
          } catch {
            // counted from the trace below
          }
        }
      }),
    );
    const ms = performance.now() - t0;
    const statuses = trace.slice(from).filter((t) => t.method === "PUT").map((t) => t.status ?? "no response");
    const ok = statuses.filter(is2xx).length;
    measured(`kinto-http 4 concurrent writers × 10: ${ms.toFixed(0)} ms, ${rate(ok, ms)} (${ok} of 40 succeeded; ${tally(statuses)})`);
    const reader = new KintoHttp(remote, { headers: u.headers }).bucket(u.bucket).collection("tabs");
    const listed = (await reader.listRecords({ pages: Infinity })).data.length;
    assert(statuses.length === 40 && ok === 40 && listed === 40, `statuses ${tally(statuses)}; ${listed} of 40 listed`);
  });

  await check("Kinto.js sync(): device A pushes 200 records, device B pulls all 200, no error or conflict", async () => {
    const u = who.push;
    const device = () =>
      new Kinto({ remote, bucket: u.bucket, headers: u.headers, adapter: (name, options) => new Memory(name, options) }).collection("tabs");
    const a = device();
    const b = device();
    for (let i = 0; i < 200; i++) await a.create({ payload: payload(`pushed ${i}`) });
    const from = trace.length;
    const t0 = performance.now();
    const res = await a.sync();
    const ms = performance.now() - t0;
    const batches = trace.slice(from).filter((t) => t.method === "POST");
    const published = res.published.length;
    measured(
      `Kinto.js push of 200 records: ${ms.toFixed(0)} ms, ${rate(published, ms)} (${published} published, ${res.errors.length} errors, ` +
        `${res.conflicts.length} conflicts; ${batches.length} POST /batch: ${tally(batches.map((t) => t.status ?? "no response"))})`,
    );
    const firstError = res.errors[0] ? JSON.stringify(res.errors[0]).slice(0, 300) : "";
    assert(res.ok && published === 200 && res.errors.length === 0 && res.conflicts.length === 0,
      `A's sync: ok ${res.ok}, ${published} published, ${res.errors.length} errors, ${res.conflicts.length} conflicts ${firstError}`);
    const pulled = await b.sync();
    assert(pulled.ok, `B's sync not ok: ${JSON.stringify(pulled).slice(0, 300)}`);
    eq(pulled.created.length, 200, "records B created from the pull");
    eq((await b.list()).data.length, 200, "records on B");
  });

  await check("kinto-http.py 11.11: 40 sequential create_record → 40 × 2xx, 40 listed", async () => {
    if (!PYTHON) {
      skip = "KINTO_PYTHON is not set";
      return;
    }
    const u = who.python;
    const child = spawn(PYTHON, [path.join(here, "kinto_http_py.py"), remote, u.bucket], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, KINTO_AUTHORIZATION: u.headers.Authorization, KINTO_KEYID: u.headers["X-KeyID"] || "" },
    });
    children.add(child);
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c) => (err += c));
    const r = await exited(child, CHECK_TIMEOUT_MS - 1000);
    if (!r) child.kill("SIGKILL");
    assert(r, "kinto_http_py.py did not finish");
    let result;
    try {
      result = JSON.parse(out.trim().split("\n").pop());
    } catch {
      throw new CheckFailed(`kinto_http_py.py exited ${r.code} without a result: ${oneLine(err).slice(-300)}`);
    }
    const ok = result.statuses.filter(is2xx).length;
    measured(`kinto-http.py 40 sequential writes: ${result.ms} ms, ${rate(ok, result.ms)} (${ok} of 40 succeeded; ${tally(result.statuses)})`);
    assert(ok === 40 && result.listed === 40, `statuses ${tally(result.statuses)}; ${result.listed} of 40 listed${result.error ? `; first error: ${result.error}` : ""}`);
  });

  await check("kinto-http without Authorization → 401, errno 104", async () => {
    const anonymous = new KintoHttp(remote);
    const e = await rejects(anonymous.bucket(http.kid).collection("tabs").listRecords(), "anonymous list");
    eq(e.response && e.response.status, 401, "status");
    eq(e.data && e.data.errno, 104, "errno");
    // The scheme to use, never Basic: a browser would answer Basic with a password dialog.
    eq(e.response.headers.get("WWW-Authenticate"), 'Bearer realm="Syncto"', "WWW-Authenticate");
  });
}

// ---------------------------------------------------------------- batched writes
// Three more servers: collapsing (the defaults: batches of 100, batch_collapse on), one by
// one (batch_collapse off), and collapsing with a pause between a batch's read and its writes
// (HOOKED_BIN) in which the runner makes another device's writes.

// The hooked server's pauses: each `collapse-hook` line runs `hooked.meddle` (once, if set),
// then lets the server go on.
function listenToHooks(child) {
  const hooks = { count: 0, meddle: null };
  let buf = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", async (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) !== -1) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line.startsWith("collapse-hook ")) continue;
      hooks.count++;
      const m = hooks.meddle;
      hooks.meddle = null;
      try {
        if (m) await m();
      } finally {
        child.stdin.write("go\n");
      }
    }
  });
  return hooks;
}

function device(remote, u) {
  return new Kinto({ remote, bucket: u.bucket, headers: u.headers, adapter: (name, options) => new Memory(name, options) }).collection("tabs");
}

// Whether some written records of these sub-responses share a timestamp (one Sync call).
function sharedTimestamps(responses) {
  const t = responses.filter((r) => r.status < 300 && r.body && r.body.data && r.body.data.last_modified).map((r) => r.body.data.last_modified);
  return new Set(t).size < t.length;
}

// The study's second-device race: a device syncs 30 records, updates 20, deletes 10 and
// creates 10; between its pull and its push (`when` = "before-push": just before its
// batch is sent; "between-read-and-write": after Syncto read the records for the batch's
// collapsed writes) another device, through `other`, updates R0, deletes R1, updates R20
// and deletes R21 (which this device deleted) and creates N0 (which this device created).
// Returns what a client can see, with ids named R0…, N0…, timestamps left out.
async function race(remote, other, u, when, hooks) {
  const c = device(remote, u);
  const R = [];
  for (let i = 0; i < 30; i++) R.push((await c.create({ payload: payload("A0"), sortindex: i })).data.id);
  let res = await c.sync();
  assert(res.ok, `setup sync not ok: ${JSON.stringify(res).slice(0, 300)}`);
  for (let i = 0; i < 20; i++) {
    const { data } = await c.get(R[i]);
    await c.update({ ...data, payload: payload("A1") });
  }
  for (let i = 20; i < 30; i++) await c.delete(R[i]);
  const N = [];
  for (let i = 0; i < 10; i++) N.push((await c.create({ payload: payload("A-new"), sortindex: 100 + i })).data.id);
  const name = (id) => (R.indexOf(id) >= 0 ? `R${R.indexOf(id)}` : N.indexOf(id) >= 0 ? `N${N.indexOf(id)}` : id);
  const elsewhere = new KintoHttp(`${other}/v1`, { headers: u.headers }).bucket(u.bucket).collection("tabs");
  let meddled = false;
  const meddle = async () => {
    await elsewhere.updateRecord({ id: R[0], payload: payload("B-update-R0") });
    await elsewhere.deleteRecord(R[1]);
    await elsewhere.updateRecord({ id: R[20], payload: payload("B-update-R20") });
    await elsewhere.deleteRecord(R[21]);
    await elsewhere.createRecord({ id: N[0], payload: payload("B-create-N0") });
    meddled = true;
  };
  const subs = [];
  batchTap = (requests, answer) =>
    answer.responses.forEach((x, i) => subs.push({ request: requests[i], answer: x }));
  if (when === "before-push") beforeBatch = meddle;
  else hooks.meddle = meddle;
  const paused = hooks ? hooks.count : 0;
  try {
    res = await c.sync();
  } finally {
    batchTap = null;
    beforeBatch = null;
    if (hooks) hooks.meddle = null;
  }
  assert(meddled, "the other device did not write");
  const seen = (x) => ({
    method: x.request.method,
    id: name(x.request.path.split("/").pop()),
    status: x.answer.status,
    errno: x.answer.body && x.answer.body.errno,
    existing: x.answer.body && x.answer.body.details && x.answer.body.details.existing ? name(x.answer.body.details.existing.id) : null,
    headers: Object.keys(x.answer.headers || {}).sort().join(","),
    data: x.answer.body && x.answer.body.data ? Object.keys(x.answer.body.data).sort().join(",") : null,
  });
  const stored = (await elsewhere.listRecords({ pages: Infinity })).data;
  return {
    pauses: hooks ? hooks.count - paused : 0,
    shared: sharedTimestamps(subs.map((x) => x.answer)),
    outcome: {
      subs: subs.map(seen).sort((a, b) => a.id.localeCompare(b.id)),
      ok: res.ok,
      published: res.published.map((p) => name(p.id)).sort(),
      conflicts: res.conflicts
        .map((x) => ({ id: name(x.local.id), type: x.type, remote: x.remote ? x.remote.payload : null }))
        .sort((a, b) => a.id.localeCompare(b.id)),
      skipped: res.skipped.map((x) => name(x.id)).sort(),
      errors: res.errors.length,
      server: stored.map((r) => `${name(r.id)}:${r.payload}`).sort(),
    },
  };
}

async function collapseChecks(servers, who) {
  const { on, off, hooked, hooks } = servers;

  for (const [what, change] of [
    ["creates", null],
    ["updates", async (c, records) => {
      for (const r of records) await c.update({ ...r, payload: payload(`updated ${r.id}`) });
    }],
    ["deletes", async (c, records) => {
      for (const r of records) await c.delete(r.id);
    }],
  ]) {
    await check(`Kinto.js sync() pushes 1,000 ${what} in batches of 100: all published, no conflict, the server agrees`, async () => {
      const u = who.bulk;
      if (!servers.bulk) servers.bulk = device(`${on}/v1`, u);
      const c = servers.bulk;
      if (change) await change(c, (await c.list()).data);
      else for (let i = 0; i < 1000; i++) await c.create({ payload: payload(`pushed ${i}`) });
      const from = trace.length;
      const t0 = performance.now();
      const res = await c.sync();
      const ms = performance.now() - t0;
      const batches = trace.slice(from).filter((t) => t.method === "POST");
      measured(`Kinto.js push of 1,000 ${what}, batches of 100 collapsed: ${ms.toFixed(0)} ms, ${rate(res.published.length, ms)} (${batches.length} POST /batch)`);
      const firstError = res.errors[0] ? JSON.stringify(res.errors[0]).slice(0, 300) : "";
      assert(res.ok && res.published.length === 1000 && res.errors.length === 0 && res.conflicts.length === 0,
        `sync: ok ${res.ok}, ${res.published.length} published, ${res.errors.length} errors, ${res.conflicts.length} conflicts ${firstError}`);
      eq(batches.length, 10, "POST /batch sent");
      const server = new KintoHttp(`${on}/v1`, { headers: u.headers }).bucket(u.bucket).collection("tabs");
      const listed = (await server.listRecords({ pages: Infinity })).data;
      eq(listed.length, what === "deletes" ? 0 : 1000, "records on the server");
      if (what === "updates") assert(listed.every((r) => r.payload === payload(`updated ${r.id}`)), "a record on the server is not the updated one");
    });
  }

  let oneByOne = null;
  await check("Kinto.js: another device writes between the pull and the push: the same outcome with collapsed writes as one by one", async () => {
    oneByOne = await race(`${off}/v1`, off, who["race-off"], "before-push");
    assert(!oneByOne.shared, "one by one, written records share a timestamp");
    const collapsed = await race(`${on}/v1`, off, who["race-on"], "before-push");
    assert(collapsed.shared, "the push was not collapsed (no written records share a timestamp)");
    eq(collapsed.outcome, oneByOne.outcome, "collapsed vs one by one");
    eq(oneByOne.outcome.conflicts.map((x) => x.id), ["N0", "R0", "R1", "R20"], "conflicts");
  });

  await check("Kinto.js: another device writes between Syncto's read of the records and its write: the same outcome as one by one", async () => {
    assert(oneByOne, "the previous check gave no one-by-one outcome");
    const forced = await race(`${hooked}/v1`, off, who["race-hooked"], "between-read-and-write", hooks);
    // The write found the collection changed (412), read the records again and wrote.
    eq(forced.pauses, 2, "pauses of the hooked server during the push (read, 412, read again)");
    assert(forced.shared, "the push was not collapsed after the second read");
    eq(forced.outcome, oneByOne.outcome, "collapsed with a write in between vs one by one");
  });
}

// ---------------------------------------------------------------- main

async function main() {
  const overall = setTimeout(() => {
    console.log(`not ok - everything within ${OVERALL_TIMEOUT_MS / 1000}s: timed out`);
    failed++;
    console.log(`${passed} passed, ${skipped} skipped, ${failed} failed`);
    killAll();
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);

  const upstream = PEER ? "the real Sync server" : "the fake upstream";
  console.log(`# syncto in front of ${upstream}; key id in the ${FORM === "header" ? "X-KeyID header (bucket syncto)" : "bucket id"}`);
  let base;
  let who;
  let collapseServers;
  try {
    if (FORM !== "bucket" && FORM !== "header") throw new Error(`--form must be bucket or header, not ${FORM}`);
    who = users();
    let tokenUrl = process.env.KINTO_PEER_TOKEN_URL;
    if (PEER) {
      if (!tokenUrl) throw new Error("--peer needs KINTO_PEER_TOKEN_URL (the peer's PEER_TOKEN_SERVER_URL)");
    } else {
      const f = await startFake();
      fake = f.child;
      tokenUrl = f.tokenUrl;
    }
    const s = await startSyncto(tokenUrl);
    syncto = s.child;
    base = s.base;
    const hundred = { SYNCTO_BATCH_MAX_REQUESTS: "100" };
    const on = await startSyncto(tokenUrl, { settings: hundred, name: "syncto-collapse" });
    const off = await startSyncto(tokenUrl, { settings: { ...hundred, SYNCTO_BATCH_COLLAPSE: "false" }, name: "syncto-one-by-one" });
    const hooked = await startSyncto(tokenUrl, { settings: hundred, bin: HOOKED_BIN, name: "collapse_hook" });
    collapseServers = { on: on.base, off: off.base, hooked: hooked.base, hooks: listenToHooks(hooked.child) };
  } catch (e) {
    failed++;
    console.log(`not ok - start ${PEER ? "" : "fake upstream and "}syncto: ${oneLine(e.message.split("\n")[0])}`);
    process.stderr.write(`${e.message}\n`);
  }

  if (base) {
    await runChecks(base, who);
    await collapseChecks(collapseServers, who);
    await check("syncto exits 0 on SIGTERM", async () => {
      syncto.kill("SIGTERM");
      const r = await exited(syncto, 10_000);
      assert(r, "still running 10 s after SIGTERM");
      eq(r, { code: 0, signal: null }, "exit");
    });
  }

  if (fake) {
    fake.stdin.end();
    if (!(await exited(fake, 5000))) fake.kill("SIGKILL");
  }
  killAll();
  clearTimeout(overall);
  if (process.env.KINTO_TRACE) process.stderr.write(`# all requests:\n${traceText(0)}\n`);
  console.log(`${passed} passed, ${skipped} skipped, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((e) => {
  console.log(`not ok - runner: ${oneLine(describe(e))}`);
  console.log(`${passed} passed, ${skipped} skipped, ${failed + 1} failed`);
  killAll();
  process.exit(1);
});

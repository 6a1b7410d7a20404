// End-to-end bench, the Node half (benches/e2e.py runs it; not part of `cargo test`).
// Each command does one measured thing and prints one JSON line.
//
//   node benches/e2e.mjs seed   TOKEN_URL USER COLL N      direct Hawk POSTs of 100 records
//   node benches/e2e.mjs direct TOKEN_URL USER COLL LIMIT  every record, pages of LIMIT, Hawk
//   node benches/e2e.mjs plain  SYNCTO    USER COLL        every record through Syncto (fetch)
//   node benches/e2e.mjs kinto  SYNCTO    USER COLL        every record, Kinto.js sync()
//   node benches/e2e.mjs first-direct TOKEN_URL USER COLL  token exchange + 10 records, then again
//   node benches/e2e.mjs first-syncto SYNCTO    USER COLL  10 records through Syncto, twice
//
// USER is one `peer.sh token … --json` object (its Authorization and X-KeyID).
// SYNCTO is Syncto's base URL (http://127.0.0.1:PORT/v1). Every client here uses
// Node's fetch, as kinto-http and Kinto.js do. Records are shaped like real Sync
// records (an encrypted payload: base64 ciphertext of 160-300 bytes, IV, hmac).
import { randomBytes } from "node:crypto";
import { now, require, sleep, storage } from "./common.mjs";

const [cmd, base, userJson, coll, arg] = process.argv.slice(2);
const user = JSON.parse(userJson || "{}");

function fail(why) {
  console.error(`e2e.mjs ${cmd}: ${why}`);
  process.exit(1);
}

async function exchange() {
  const res = await fetch(new URL("1.0/sync/1.5", base), {
    headers: { Authorization: user.Authorization, "X-KeyID": user["X-KeyID"] },
  });
  if (res.status !== 200) fail(`token server answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

function record(i) {
  const n = 160 + Math.floor(Math.random() * 141);
  const payload = JSON.stringify({
    ciphertext: randomBytes(n).toString("base64"),
    IV: randomBytes(16).toString("base64"),
    hmac: randomBytes(32).toString("hex"),
  });
  return { id: randomBytes(9).toString("base64url"), payload, sortindex: i % 2000 };
}

// Direct POSTs of 100 records, one at a time and 11 ms apart: the node refuses a
// second write to a collection in the same 10 ms tick (a 503, sent again).
async function seed() {
  const cred = await exchange();
  const n = Number(arg);
  const t0 = now();
  let sent = 0;
  let retries = 0;
  while (sent < n) {
    const batch = [];
    for (let i = sent; i < Math.min(n, sent + 100); i++) batch.push(record(i));
    const { res, text } = await storage(cred, "POST", coll, JSON.stringify(batch));
    await sleep(11);
    if (res.status === 503) {
      if (++retries > 50) fail("too many 503s");
      continue;
    }
    const out = res.status === 200 ? JSON.parse(text) : null;
    if (!out || out.success.length !== batch.length) fail(`POST answered ${res.status}: ${text.slice(0, 200)}`);
    sent += batch.length;
  }
  return { records: sent, ms: now() - t0, retries };
}

// The same listing Syncto asks for (full=1, sort=newest, pages of LIMIT), followed
// by X-Weave-Next-Offset.
async function direct() {
  const cred = await exchange();
  const t0 = now();
  let records = 0;
  let pages = 0;
  let offset = null;
  do {
    const q = `full=1&limit=${arg}${offset ? `&offset=${encodeURIComponent(offset)}` : ""}&sort=newest`;
    const { res, text } = await storage(cred, "GET", `${coll}?${q}`);
    if (res.status !== 200) fail(`GET answered ${res.status}`);
    records += JSON.parse(text).length;
    pages++;
    offset = res.headers.get("x-weave-next-offset");
  } while (offset);
  return { records, pages, ms: now() - t0 };
}

const remote = () => base.replace(/\/$/, "");
const kintoHeaders = () => ({ Authorization: user.Authorization });
const recordsUrl = (query = "") => `${remote()}/buckets/${user["X-KeyID"]}/collections/${coll}/records${query}`;

// What kinto-http does for a listing, without the library: Next-Page followed.
async function plain() {
  const t0 = now();
  let records = 0;
  let pages = 0;
  let url = recordsUrl("?_sort=-last_modified");
  while (url) {
    const res = await fetch(url, { headers: kintoHeaders() });
    if (res.status !== 200) fail(`GET answered ${res.status}`);
    records += (await res.json()).data.length;
    pages++;
    url = res.headers.get("next-page");
  }
  return { records, pages, ms: now() - t0 };
}

async function kinto() {
  const Kinto = require("kinto").default;
  const Memory = require("kinto/lib/cjs/adapters/memory").default;
  const c = new Kinto({
    remote: remote(),
    bucket: user["X-KeyID"],
    headers: kintoHeaders(),
    adapter: (name, options) => new Memory(name, options),
  }).collection(coll);
  const t0 = now();
  const res = await c.sync();
  const ms = now() - t0;
  if (!res.ok) fail(`sync() not ok: ${JSON.stringify(res).slice(0, 300)}`);
  const records = (await c.list()).data.length;
  return { records, created: res.created.length, ms };
}

async function firstDirect() {
  const t0 = now();
  const cred = await exchange();
  const q = `${coll}?full=1&limit=10&sort=newest`;
  let { res } = await storage(cred, "GET", q);
  const first = now() - t0;
  if (res.status !== 200) fail(`GET answered ${res.status}`);
  const t1 = now();
  ({ res } = await storage(cred, "GET", q));
  if (res.status !== 200) fail(`GET answered ${res.status}`);
  return { first, cached: now() - t1 };
}

async function firstSyncto() {
  const get = async () => {
    const t0 = now();
    const res = await fetch(recordsUrl("?_limit=10"), { headers: kintoHeaders() });
    await res.text();
    if (res.status !== 200) fail(`GET answered ${res.status}`);
    return now() - t0;
  };
  const first = await get();
  return { first, cached: await get() };
}

// Node loads and sets up its HTTP client on the first fetch (tens of ms): one
// untimed request to the same server first, for every command alike, so that
// the timings hold requests only (on a connection already open).
async function warm() {
  const url = cmd === "plain" || cmd === "kinto" || cmd === "first-syncto" ? `${remote()}/__lbheartbeat__` : new URL("__lbheartbeat__", base);
  const res = await fetch(url);
  await res.arrayBuffer();
}

const commands = { seed, direct, plain, kinto, "first-direct": firstDirect, "first-syncto": firstSyncto };
if (!commands[cmd]) fail(`unknown command (${Object.keys(commands).join(", ")})`);
await warm();
const cpu0 = process.cpuUsage();
const out = await commands[cmd]();
const cpu = process.cpuUsage(cpu0);
out.client_cpu_ms = (cpu.user + cpu.system) / 1000;
console.log(JSON.stringify(out));

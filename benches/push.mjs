// Push bench, the Node half (benches/push.py runs it; not part of `cargo test`). Each
// command does one measured thing and prints one JSON line.
//
//   node benches/push.mjs kinto  SYNCTO    USER COLL N   Kinto.js sync() pushes of N creates,
//                                                        then N updates, then N deletes
//   node benches/push.mjs direct TOKEN_URL USER COLL N   the same writes straight to the Sync
//                                                        node: paced POSTs of 100 (creates, then
//                                                        updates), paced DELETE ?ids= of 100
//
// USER is one `peer.sh token … --json` object (its Authorization and X-KeyID); SYNCTO is
// Syncto's base URL (http://127.0.0.1:PORT/v1). Records are shaped as the design study's:
// an encrypted-looking payload of about 600 bytes and a sortindex. "Paced" is what Syncto
// does for one user's collection: the next write 11 ms after the previous answer, a write
// the node refused as a conflict (503, body 0) sent again.
import { randomBytes } from "node:crypto";
import { now, require, sleep, storage } from "./common.mjs";

const [cmd, base, userJson, coll, arg] = process.argv.slice(2);
const user = JSON.parse(userJson || "{}");
const n = Number(arg);

function fail(why) {
  console.error(`push.mjs ${cmd}: ${why}`);
  process.exit(1);
}

function payload() {
  return JSON.stringify({
    ciphertext: randomBytes(450).toString("base64"),
    IV: randomBytes(16).toString("base64"),
    hmac: randomBytes(32).toString("hex"),
  });
}

// ---------------------------------------------------------------- through Syncto

async function kinto() {
  const Kinto = require("kinto").default;
  const Memory = require("kinto/lib/cjs/adapters/memory").default;
  let batches = 0;
  const realFetch = globalThis.fetch;
  globalThis.fetch = (url, init = {}) => {
    if (String(url).endsWith("/batch")) batches++;
    return realFetch(url, init);
  };
  const c = new Kinto({
    remote: base.replace(/\/$/, ""),
    bucket: user["X-KeyID"],
    headers: { Authorization: user.Authorization },
    adapter: (name, options) => new Memory(name, options),
  }).collection(coll);
  await c.sync();
  const out = {};
  const push = async (what) => {
    batches = 0;
    const t0 = now();
    const r = await c.sync();
    const ms = now() - t0;
    if (!r.ok || r.published.length !== n || r.errors.length || r.conflicts.length) {
      fail(`${what}: ok ${r.ok}, ${r.published.length} of ${n} published, ${r.errors.length} errors, ${r.conflicts.length} conflicts`);
    }
    out[what] = { ms, batches };
  };
  for (let i = 0; i < n; i++) await c.create({ payload: payload(), sortindex: i });
  await push("creates");
  for (const r of (await c.list()).data) await c.update({ ...r, payload: payload() });
  await push("updates");
  for (const r of (await c.list()).data) await c.delete(r.id);
  await push("deletes");
  return out;
}

// ---------------------------------------------------------------- straight to the node

async function direct() {
  const res = await fetch(new URL("1.0/sync/1.5", base), {
    headers: { Authorization: user.Authorization, "X-KeyID": user["X-KeyID"] },
  });
  if (res.status !== 200) fail(`token server answered ${res.status}`);
  const cred = await res.json();
  let lastAnswer = null;
  let conflicts = 0;
  // One write, paced as Syncto paces a user's collection.
  const paced = async (method, rest, body) => {
    for (;;) {
      if (lastAnswer !== null) {
        const wait = lastAnswer + 11 - now();
        if (wait > 0) await sleep(wait);
      }
      const { res: r, text } = await storage(cred, method, rest, body);
      lastAnswer = now();
      if (r.status === 503 && text.trim() === "0") {
        if (++conflicts > 100) fail("too many conflicts");
        continue;
      }
      if (r.status !== 200) fail(`${method} answered ${r.status}: ${text.slice(0, 200)}`);
      return text;
    }
  };
  const ids = Array.from({ length: n }, () => randomBytes(9).toString("base64url"));
  const chunks = [];
  for (let i = 0; i < n; i += 100) chunks.push(ids.slice(i, i + 100));
  const out = {};
  const timed = async (what, write) => {
    const t0 = now();
    for (const chunk of chunks) await write(chunk);
    out[what] = { ms: now() - t0, calls: chunks.length };
  };
  const post = async (chunk) => {
    const body = JSON.stringify(chunk.map((id, i) => ({ id, payload: payload(), sortindex: i })));
    const answer = JSON.parse(await paced("POST", coll, body));
    if (answer.success.length !== chunk.length) fail(`POST: ${answer.success.length} of ${chunk.length} written`);
  };
  await timed("creates", post);
  await timed("updates", post);
  await timed("deletes", (chunk) => paced("DELETE", `${coll}?ids=${chunk.join(",")}`));
  out.conflicts = conflicts;
  return out;
}

// Node sets up its HTTP client on the first fetch (tens of ms): one untimed request to
// the same server first.
async function warm() {
  const url = cmd === "kinto" ? `${base.replace(/\/$/, "")}/__lbheartbeat__` : new URL("__lbheartbeat__", base);
  const res = await fetch(url);
  await res.arrayBuffer();
}

const commands = { kinto, direct };
if (!commands[cmd]) fail(`unknown command (${Object.keys(commands).join(", ")})`);
if (!(n > 0)) fail("N must be a positive number");
await warm();
console.log(JSON.stringify(await commands[cmd]()));

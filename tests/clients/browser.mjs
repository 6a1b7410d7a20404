// The example web app (examples/sync-viewer) in a real headless Chromium, against Syncto and
// the real Firefox Sync server (peer.sh): the user's open tabs and history, encrypted here
// as Firefox encrypts them (keys made by this test, never real ones), must come out
// decrypted in the page, read with kinto-http.js through Syncto from another origin (CORS),
// and the Sync key must never reach Syncto.
//
//   node tests/clients/browser.mjs        (from the repository root; .ci/run does)
//
// Env: PEER_DIR (a running `peer.sh start DIR`), PEER_SH (peer.sh), SYNCTO (the binary,
// default target/debug/syncto), CHROMIUM (default /usr/bin/chromium). Needs `npm ci` in
// tests/clients (playwright-core and kinto-http come from there). Prints `ok`/`not ok`
// lines and `N passed, M failed`; exits non-zero on any failure or after 120 s.

import { spawn, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const APP = path.join(ROOT, "examples/sync-viewer");
const KINTO_HTTP = path.join(HERE, "node_modules/kinto-http/dist/kinto-http.min.js");
const PEER_DIR = process.env.PEER_DIR;
const PEER_SH = process.env.PEER_SH;
const SYNCTO = process.env.SYNCTO || path.join(ROOT, "target/debug/syncto");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--no-first-run", "--disable-sync"];

let passed = 0;
let failed = 0;
const children = [];
function check(what, ok, detail = "") {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "ok" : "not ok"} - ${what}${ok || !detail ? "" : `: ${detail}`}`);
}
function finish() {
  for (const c of children) c.kill("SIGTERM");
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}
const overall = setTimeout(() => {
  check("everything within 120 s", false, "timed out");
  finish();
}, 120_000);

// ---- Firefox Sync's crypto, written with node's crypto (the page uses WebCrypto) --------------

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
/** The oldsync scoped key's `k`: HKDF-SHA256(kB, no salt, "identity.mozilla.com/picl/v1/oldsync", 64). */
const syncKey = (kB) =>
  Buffer.from(crypto.hkdfSync("sha256", kB, Buffer.alloc(0), "identity.mozilla.com/picl/v1/oldsync", 64));
/** The payload string of a record: AES-256-CBC, then HMAC-SHA256 over the base64 ciphertext. */
function encrypt(bundle, cleartext) {
  const iv = crypto.randomBytes(16);
  const cipher = crypto.createCipheriv("aes-256-cbc", bundle.subarray(0, 32), iv);
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(cleartext)), cipher.final()]).toString("base64");
  const hmac = crypto.createHmac("sha256", bundle.subarray(32, 64)).update(ciphertext).digest("hex");
  return JSON.stringify({ ciphertext, IV: iv.toString("base64"), hmac });
}

// ---- the user, stored on the real Sync server directly (Hawk, by peer.sh) ---------------------

function peer(...args) {
  return execFileSync("bash", [PEER_SH, ...args, ], { encoding: "utf8" });
}

async function seed() {
  const kB = crypto.randomBytes(32);
  const clientState = crypto.createHash("sha256").update(kB).digest().subarray(0, 16).toString("hex");
  const uid = crypto.randomBytes(16).toString("hex");
  const user = JSON.parse(peer("token", PEER_DIR, uid, clientState, "--json"));
  const k = syncKey(kB);
  const collectionKey = crypto.randomBytes(64);
  const put = (collection, id, cleartext, bundle) =>
    peer("sync", PEER_DIR, uid, clientState, "PUT", `/storage/${collection}/${id}`,
      JSON.stringify({ payload: encrypt(bundle, cleartext) }));
  put("crypto", "keys", {
    id: "keys", collection: "crypto", collections: {},
    default: [collectionKey.subarray(0, 32).toString("base64"), collectionKey.subarray(32).toString("base64")],
  }, k);
  const now = Date.now();
  const tabs = [
    { title: "Syncto design notes", urlHistory: ["https://example.org/notes"], icon: "", lastUsed: now / 1000 },
    { title: "Kinto docs <b>bold?</b>", urlHistory: ["https://example.org/kinto"], icon: "", lastUsed: now / 1000 },
  ];
  put("tabs", "laptop1", { id: "laptop1", clientName: "Test laptop", tabs }, collectionKey);
  const history = [
    { id: "hist1", histUri: "https://example.org/first", title: "First visit", visits: [{ date: now * 1000, type: 1 }] },
    { id: "hist2", histUri: "https://example.org/second", title: "Second <script>visit</script>",
      visits: [{ date: now * 1000, type: 1 }, { date: now * 1000 - 1e6, type: 2 }] },
  ];
  for (const h of history) put("history", h.id, h, collectionKey);
  return { user, k: b64url(k), tabs, history };
}

// ---- Syncto and the page's own origin ----------------------------------------------------------

function startSyncto(origin) {
  const tokenUrl = fs.readFileSync(path.join(PEER_DIR, "peer.env"), "utf8").match(/^PEER_TOKEN_SERVER_URL=(.*)$/m)[1];
  const child = spawn(SYNCTO, ["--bind", "127.0.0.1:0"], {
    env: { ...process.env, SYNCTO_TOKEN_SERVER_URL: tokenUrl, SYNCTO_CORS_ORIGINS: origin, SYNCTO_INI: "" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(child);
  let log = "";
  return new Promise((resolve, reject) => {
    child.stderr.on("data", (d) => {
      log += d;
      const m = log.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}/v1`, log: () => log });
    });
    child.on("exit", (code) => reject(new Error(`syncto exited ${code}: ${log}`)));
  });
}

function serveApp() {
  const types = { ".html": "text/html", ".js": "text/javascript" };
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/+/, "") || "index.html";
    const file = name === "kinto-http.min.js" ? KINTO_HTTP : path.join(APP, path.basename(name));
    fs.readFile(file, (err, body) => {
      if (err) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "Content-Type": types[path.extname(file)] || "application/octet-stream" }).end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

// ---- the run -----------------------------------------------------------------------------------

async function main() {
  if (!PEER_DIR || !PEER_SH) throw new Error("set PEER_DIR (a running peer.sh start DIR) and PEER_SH");
  const { user, k, tabs, history } = await seed();
  const site = await serveApp();
  const origin = `http://127.0.0.1:${site.address().port}`;
  const syncto = await startSyncto(origin);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    const page = await browser.newPage();
    const toSyncto = [];
    page.on("request", (r) => {
      if (r.url().startsWith(syncto.url.replace(/\/v1$/, ""))) toSyncto.push(r);
    });
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${origin}/index.html`);
    const show = async (synckey) => {
      await page.fill("input[name=server]", syncto.url);
      await page.fill("input[name=token]", user.Authorization.replace(/^Bearer /, ""));
      await page.fill("input[name=keyid]", user["X-KeyID"]);
      await page.fill("input[name=synckey]", synckey);
      await page.click("button[type=submit]");
      await page.waitForFunction(() => /^(Done|Error)/.test(document.getElementById("status").textContent),
        null, { timeout: 30_000 });
      return page.textContent("#status");
    };

    const status = await show(k);
    check("the page reads and decrypts through Syncto", status.startsWith("Done: 2 open tabs, 2 history entries"), status);
    const links = (sel) => page.$$eval(`${sel} a`, (as) => as.map((a) => [a.textContent, a.getAttribute("href")]));
    const shownTabs = await links("#tabs");
    check("open tabs decrypted: titles and URLs",
      JSON.stringify(shownTabs) === JSON.stringify(tabs.map((t) => [t.title, t.urlHistory[0]])), JSON.stringify(shownTabs));
    const shownHistory = (await links("#history")).sort();
    const expected = history.map((h) => [h.title, h.histUri]).sort();
    check("history decrypted: titles and URLs", JSON.stringify(shownHistory) === JSON.stringify(expected),
      JSON.stringify(shownHistory));
    check("record text is shown as text, never run as HTML",
      (await page.$$("#history script, #tabs b")).length === 0);
    check("the client name is shown", (await page.textContent("#tabs")).includes("Test laptop"));
    check("no script error in the page", pageErrors.length === 0, pageErrors.join("; "));

    // CORS from the page's own origin: a preflight, then answers the page may read.
    const preflights = toSyncto.filter((r) => r.method() === "OPTIONS");
    const gets = toSyncto.filter((r) => r.method() === "GET");
    check("cross-origin requests to Syncto (GETs of crypto/keys, tabs, history)", gets.length >= 3,
      gets.map((r) => r.url()).join(" "));
    const firstGet = gets.length ? await gets[0].response() : null;
    check("Syncto allows exactly the page's origin",
      firstGet && firstGet.headers()["access-control-allow-origin"] === origin,
      firstGet && JSON.stringify(firstGet.headers()));
    // Chromium does not show preflights to the page: Syncto's request log does.
    const preflightLines = syncto.log().split("\n").filter((l) => / OPTIONS \/v1\/buckets\/\S+ 200 /.test(l));
    check("the browser's preflights were answered 200 (Authorization is not a simple header)",
      preflightLines.length >= 1, `${preflights.length} seen by the page; log:\n${syncto.log()}`);

    // The Sync key never leaves the page.
    const sent = toSyncto.map((r) => `${r.url()} ${JSON.stringify(r.headers())} ${r.postData() || ""}`).join("\n");
    check("the Sync key is in no request to Syncto", !sent.includes(k) && !sent.includes(k.slice(0, 20)));
    check("nor in Syncto's log", !syncto.log().includes(k.slice(0, 20)));

    // A wrong key is refused by the HMAC check, not shown as garbage.
    const wrong = b64url(crypto.randomBytes(64));
    const refused = await show(wrong);
    check("a wrong Sync key is an HMAC error", refused.startsWith("Error: HMAC mismatch"), refused);
  } finally {
    await browser.close();
    site.close();
  }
}

main()
  .catch((e) => check("the run", false, e.stack || String(e)))
  .finally(() => {
    clearTimeout(overall);
    finish();
  });

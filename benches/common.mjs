// What the Node halves of the benches (e2e.mjs, push.mjs) share: the client packages of
// tests/clients, the clock, and Hawk-signed calls to the Sync node as a direct client
// makes them. Not part of `cargo test`.
import { createHmac, createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// require() of the packages tests/clients installs (kinto, kinto-http).
export const require = createRequire(path.join(here, "../tests/clients/package.json"));
export const now = () => performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Hawk (sha256) for the Sync node; the key is the token's key string.
export function hawk(cred, method, url, body) {
  const u = new URL(url);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  const ts = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(6).toString("base64");
  let hash = "";
  if (body !== undefined) {
    hash = createHash("sha256").update(`hawk.1.payload\napplication/json\n${body}\n`).digest("base64");
  }
  const norm = `hawk.1.header\n${ts}\n${nonce}\n${method}\n${u.pathname}${u.search}\n${u.hostname}\n${port}\n${hash}\n\n`;
  const mac = createHmac("sha256", cred.key).update(norm).digest("base64");
  return `Hawk id="${cred.id}", ts="${ts}", nonce="${nonce}", ${hash ? `hash="${hash}", ` : ""}mac="${mac}"`;
}

// One call to the Sync node's storage (`rest`: the path after /storage/), Hawk-signed
// with the Token Server's answer `cred`; a JSON body if `body` is given.
export async function storage(cred, method, rest, body) {
  const url = `${cred.api_endpoint}/storage/${rest}`;
  const headers = { Authorization: hawk(cred, method, url, body) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  return { res, text };
}

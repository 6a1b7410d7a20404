// Firefox Sync's record encryption, with WebCrypto only (no library): the key bundle of the
// `oldsync` scoped key, `crypto/keys`, and the AES-256-CBC + HMAC-SHA256 envelope of every
// record. Everything here runs in the page: the keys never leave it, and Syncto, which only
// relays the encrypted payloads, never sees them.

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Bytes of a base64 or base64url string (padding optional). */
export function fromBase64(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const bin = atob(padded);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function fromHex(hex) {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error("hmac is not hex");
  return Uint8Array.from(hex.match(/../g) || [], (h) => parseInt(h, 16));
}

/**
 * A Sync key bundle: 32 bytes of AES-256 key, then 32 bytes of HMAC-SHA256 key.
 * `bytes` is the 64-byte `k` of the oldsync scoped key (for the account's own bundle),
 * or the two halves of a `crypto/keys` entry.
 */
export async function keyBundle(bytes) {
  if (bytes.length !== 64) throw new Error(`a key bundle is 64 bytes, got ${bytes.length}`);
  const aes = await crypto.subtle.importKey("raw", bytes.slice(0, 32), "AES-CBC", false, ["decrypt"]);
  const hmac = await crypto.subtle.importKey(
    "raw", bytes.slice(32, 64), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  return { aes, hmac };
}

/**
 * The cleartext of one record's `payload` (the JSON string Syncto returns as is):
 * `{"ciphertext": base64, "IV": base64, "hmac": hex}`. The HMAC, over the base64 text of
 * the ciphertext, is checked first: a wrong key or a tampered record is an error, never
 * garbage.
 */
export async function decryptPayload(bundle, payload) {
  const envelope = JSON.parse(payload);
  const { ciphertext, IV, hmac } = envelope;
  if (typeof ciphertext !== "string" || typeof IV !== "string" || typeof hmac !== "string") {
    throw new Error("not an encrypted Sync payload");
  }
  const ok = await crypto.subtle.verify("HMAC", bundle.hmac, fromHex(hmac), enc.encode(ciphertext));
  if (!ok) throw new Error("HMAC mismatch: wrong key, or a record that was tampered with");
  const clear = await crypto.subtle.decrypt(
    { name: "AES-CBC", iv: fromBase64(IV) }, bundle.aes, fromBase64(ciphertext));
  return JSON.parse(dec.decode(clear));
}

/**
 * The collection keys of `crypto/keys`, decrypted with the account's bundle: a function
 * giving the bundle of a collection (its own key if it has one, else the default).
 */
export async function collectionKeys(accountBundle, cryptoKeysPayload) {
  const keys = await decryptPayload(accountBundle, cryptoKeysPayload);
  const bundleOf = async (pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw new Error("malformed crypto/keys");
    const bytes = new Uint8Array(64);
    bytes.set(fromBase64(pair[0]), 0);
    bytes.set(fromBase64(pair[1]), 32);
    return keyBundle(bytes);
  };
  const fallback = await bundleOf(keys.default);
  const own = keys.collections || {};
  return async (collection) => (own[collection] ? bundleOf(own[collection]) : fallback);
}

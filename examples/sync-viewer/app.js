// The page: reads the user's open tabs and history through Syncto with kinto-http.js
// (`KintoClient`, loaded by index.html), and decrypts them here with sync-crypto.js.
import { collectionKeys, decryptPayload, fromBase64, keyBundle } from "./sync-crypto.js";

const $ = (id) => document.getElementById(id);

function show(status, isError = false) {
  $("status").textContent = status;
  $("status").className = isError ? "error" : "";
}

/** A list item with a link, built with textContent: record data is never parsed as HTML. */
function item(title, url, note) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.textContent = title || url;
  if (/^https?:\/\//i.test(url)) a.href = url;
  a.rel = "noreferrer";
  li.append(a);
  if (note) li.append(` — ${note}`);
  return li;
}

async function load(form) {
  const server = form.server.value.trim().replace(/\/+$/, "");
  const token = form.token.value.trim();
  const keyId = form.keyid.value.trim();
  // The `k` of the oldsync scoped key: 64 bytes, base64url. It stays in this page.
  const accountBundle = await keyBundle(fromBase64(form.synckey.value.trim()));
  const client = new KintoClient(server, { headers: { Authorization: `Bearer ${token}` } });
  // The key id as bucket id: Syncto takes the user's key id from it.
  const bucket = client.bucket(keyId);

  show("Reading crypto/keys…");
  const keysRecord = await bucket.collection("crypto").getRecord("keys");
  const keyFor = await collectionKeys(accountBundle, keysRecord.data.payload);

  show("Reading tabs…");
  const tabsBundle = await keyFor("tabs");
  const tabs = await bucket.collection("tabs").listRecords({ pages: Infinity });
  const tabList = $("tabs");
  tabList.replaceChildren();
  for (const record of tabs.data) {
    const client = await decryptPayload(tabsBundle, record.payload);
    if (client.deleted) continue;
    for (const tab of client.tabs || []) {
      const url = (tab.urlHistory || [])[0] || "";
      tabList.append(item(tab.title, url, client.clientName));
    }
  }

  show("Reading history…");
  const historyBundle = await keyFor("history");
  const history = await bucket.collection("history").listRecords({ sort: "-last_modified", limit: 50 });
  const historyList = $("history");
  historyList.replaceChildren();
  for (const record of history.data) {
    const visit = await decryptPayload(historyBundle, record.payload);
    if (visit.deleted) continue;
    historyList.append(item(visit.title, visit.histUri, `${(visit.visits || []).length} visits`));
  }
  show(`Done: ${tabList.children.length} open tabs, ${historyList.children.length} history entries.`);
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  load(event.target).catch((e) => show(`Error: ${e.message}`, true));
});

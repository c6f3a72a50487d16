// athkit: the signed-in user's side of the 9-step handshake (docs/handshake.md).
// A P-256 key is generated with WebCrypto as non-extractable and kept in IndexedDB; it signs
// the key-link object once and every step-7 confirmation. Signatures are raw r||s (64 bytes),
// base64url without padding, over the canonical JSON of the object (sorted keys, no spaces).
"use strict";
(function () {
  const root = document.getElementById("ath-hs");
  if (!root) return;
  const DB_NAME = "athkit-user-keys";
  const STORE = "keys";

  // -- encodings ---------------------------------------------------------------------------
  function b64url(bytes) {
    let bin = "";
    const arr = new Uint8Array(bytes);
    for (let i = 0; i < arr.length; i++) bin += String.fromCharCode(arr[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function unb64url(text) {
    const s = text.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(s + "===".slice((s.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  function base58btc(bytes) {
    let zeros = 0;
    while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
    let n = 0n;
    for (const b of bytes) n = n * 256n + BigInt(b);
    let out = "";
    while (n > 0n) {
      out = B58[Number(n % 58n)] + out;
      n = n / 58n;
    }
    return "1".repeat(zeros) + out;
  }
  // did:key of a P-256 public JWK: multicodec p256-pub (0x1200, varint 0x80 0x24) followed by
  // the 33-byte compressed point (0x02 | parity of y, then x).
  function didKeyFromJwk(jwk) {
    const x = unb64url(jwk.x);
    const y = unb64url(jwk.y);
    const data = new Uint8Array(2 + 33);
    data[0] = 0x80;
    data[1] = 0x24;
    data[2] = 0x02 | (y[31] & 1);
    data.set(x, 3);
    return "did:key:z" + base58btc(data);
  }
  function canonical(value) {
    if (value === null || typeof value !== "object") {
      if (typeof value === "number" && !Number.isInteger(value)) throw new Error("no floats");
      return JSON.stringify(value);
    }
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    return "{" + Object.keys(value).sort().map(
      (k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  function nonce() {
    return b64url(crypto.getRandomValues(new Uint8Array(32)));
  }

  // -- IndexedDB ---------------------------------------------------------------------------
  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "did" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  async function dbDo(mode, fn) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  }
  const putKey = (rec) => dbDo("readwrite", (s) => s.put(rec));
  const getKey = (did) => dbDo("readonly", (s) => s.get(did));
  const allKeys = () => dbDo("readonly", (s) => s.getAll());

  async function signObject(privateKey, obj) {
    const data = new TextEncoder().encode(canonical(obj));
    const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, data);
    return b64url(sig);
  }
  async function postJson(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  const account = root.dataset.account;
  const serverDid = root.dataset.serverDid;
  const status = document.getElementById("status");
  function say(el, text) { if (el) el.textContent = text; }

  // -- the key page ------------------------------------------------------------------------
  async function linkKey() {
    say(status, "Creating a key…");
    const pair = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const pub = await crypto.subtle.exportKey("jwk", pair.publicKey);
    const jwk = { kty: "EC", crv: "P-256", x: pub.x, y: pub.y };
    const did = didKeyFromJwk(jwk);
    const obj = {
      purpose: "ath-user-key-link", user_did: did, account: account, server_did: serverDid,
      nonce: nonce(), timestamp: Math.floor(Date.now() / 1000),
    };
    const signature = await signObject(pair.privateKey, obj);
    const res = await postJson("/ath/user/keys", {
      user_did: did, public_jwk: jwk, signature: signature, nonce: obj.nonce,
      timestamp: obj.timestamp,
    });
    if (!res.ok) {
      say(status, "Linking failed: " + ((res.data && res.data.code) || res.status));
      return;
    }
    await putKey({ did: did, account: account, server: serverDid, privateKey: pair.privateKey,
      publicJwk: jwk, created: Date.now() });
    const list = document.getElementById("linked");
    const none = document.getElementById("no-keys");
    if (none) none.remove();
    const li = document.createElement("li");
    const code = document.createElement("code");
    code.className = "did";
    code.textContent = did;
    li.appendChild(code);
    list.appendChild(li);
    say(status, "Linked: " + did);
    root.dataset.linkedDid = did;
    await showLocal();
  }
  async function showLocal() {
    const el = document.getElementById("local-key");
    const keys = (await allKeys()).filter((k) => k.account === account && k.server === serverDid);
    say(el, keys.length ? "This browser holds the key " + keys[keys.length - 1].did
      : "This browser holds no key for your account yet.");
  }

  async function issueCredential() {
    const out = document.getElementById("credential");
    const keys = (await allKeys()).filter((k) => k.account === account && k.server === serverDid);
    if (!keys.length) { say(out, "Link a key first."); return; }
    const rec = keys[keys.length - 1];
    const clientDid = document.getElementById("agent-did").value.trim();
    const scopes = document.getElementById("cred-scopes").value.split(/\s+/).filter(Boolean);
    const minutes = parseInt(document.getElementById("cred-ttl").value, 10);
    if (!clientDid.startsWith("did:") || !scopes.length || !(minutes > 0)) {
      say(out, "Enter the agent's DID, at least one scope and a validity.");
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const credential = {
      purpose: "ath-user-credential", user_did: rec.did, client_did: clientDid,
      scopes: Array.from(new Set(scopes)), expires_at: now + minutes * 60, issued_at: now,
    };
    const signature = await signObject(rec.privateKey, credential);
    say(out, JSON.stringify({ credential: credential, signature: signature }, null, 1));
  }

  // -- the confirmation page ---------------------------------------------------------------
  async function answer(section, approved) {
    const out = section.querySelector(".result");
    const userDid = section.dataset.userDid;
    const rec = await getKey(userDid);
    if (!rec) {
      say(out, "This browser does not hold the key " + userDid + "; answer where it lives.");
      return;
    }
    const scopes = approved
      ? Array.from(section.querySelectorAll("input.scope:checked")).map((i) => i.value) : [];
    const obj = {
      purpose: "ath-user-confirmation",
      request_id: section.dataset.requestId,
      handshake_id: section.dataset.handshakeId,
      user_did: userDid,
      client_did: section.dataset.clientDid,
      approved: approved,
      approved_scopes: scopes,
      expires_at: parseInt(section.dataset.expiresAt, 10),
    };
    const signature = await signObject(rec.privateKey, obj);
    const res = await postJson("/ath/confirmations/" + encodeURIComponent(obj.request_id), {
      request_id: obj.request_id, approved: approved, approved_scopes: scopes,
      expires_at: obj.expires_at, signature: signature, handshake_id: obj.handshake_id,
      user_did: userDid, client_did: obj.client_did,
    });
    section.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    if (res.ok) {
      section.dataset.outcome = res.data.status;
      say(out, res.data.status === "approved" ? "Approved." : "Denied.");
    } else {
      section.dataset.outcome = "error";
      say(out, "Failed: " + ((res.data && res.data.code) || res.status));
    }
  }

  function ready() {
    if (root.dataset.page === "keys") {
      const btn = document.getElementById("link-key");
      btn.addEventListener("click", () => {
        linkKey().catch((e) => say(status, "Error: " + e.message));
      });
      showLocal().catch(() => {});
      document.getElementById("issue-credential").addEventListener("click", () => {
        issueCredential().catch((e) => say(document.getElementById("credential"), e.message));
      });
    } else if (root.dataset.page === "confirmations") {
      document.querySelectorAll("section.confirmation").forEach((section) => {
        const out = section.querySelector(".result");
        section.querySelector("button.approve").addEventListener("click", () => {
          answer(section, true).catch((e) => say(out, "Error: " + e.message));
        });
        section.querySelector("button.deny").addEventListener("click", () => {
          answer(section, false).catch((e) => say(out, "Error: " + e.message));
        });
      });
    }
    root.dataset.ready = "1";
  }
  ready();
})();

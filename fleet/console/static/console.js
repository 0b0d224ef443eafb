// hpfleet console: the only script, loaded from 'self' (the CSP allows no
// inline script). It runs the WebAuthn ceremonies: it fetches the options
// from the server, calls navigator.credentials, and posts the result back
// with the session's CSRF token. Everything else is plain HTML forms.
"use strict";
(function () {
  function b64uDecode(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function b64uEncode(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function csrf() {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }
  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? "{}" : JSON.stringify(body),
    });
    let j = {};
    try { j = await r.json(); } catch (e) { j = {}; }
    if (!r.ok) {
      throw new Error((j.error && j.error.message) || ("refused: " + r.status));
    }
    return j;
  }
  // The server's options use base64url strings where the browser wants
  // bytes (WebAuthn Level 3 §5.4, §5.5).
  function creationOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64uDecode(pk.challenge);
    pk.user.id = b64uDecode(pk.user.id);
    for (const c of pk.excludeCredentials || []) c.id = b64uDecode(c.id);
    return { publicKey: pk };
  }
  function requestOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64uDecode(pk.challenge);
    for (const c of pk.allowCredentials || []) c.id = b64uDecode(c.id);
    return { publicKey: pk };
  }
  function credentialJSON(c) {
    const r = c.response;
    const resp = { clientDataJSON: b64uEncode(r.clientDataJSON) };
    if (r.attestationObject) {
      resp.attestationObject = b64uEncode(r.attestationObject);
      if (r.getTransports) resp.transports = r.getTransports();
    }
    if (r.authenticatorData) {
      resp.authenticatorData = b64uEncode(r.authenticatorData);
      resp.signature = b64uEncode(r.signature);
      if (r.userHandle) resp.userHandle = b64uEncode(r.userHandle);
    }
    return {
      id: c.id, rawId: b64uEncode(c.rawId), type: c.type, response: resp,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      authenticatorAttachment: c.authenticatorAttachment || undefined,
    };
  }
  async function passkey(btn) {
    const register = btn.dataset.passkey === "register";
    const opts = await post(btn.dataset.begin);
    const cred = register
      ? await navigator.credentials.create(creationOptions(opts))
      : await navigator.credentials.get(requestOptions(opts));
    let finish = btn.dataset.finish;
    if (btn.dataset.next) finish += "?next=" + encodeURIComponent(btn.dataset.next);
    const res = await post(finish, credentialJSON(cred));
    location.assign(res.next || "/console/inventory");
  }
  document.addEventListener("DOMContentLoaded", function () {
    for (const btn of document.querySelectorAll("[data-passkey]")) {
      const status = document.getElementById("passkey-status");
      if (!window.PublicKeyCredential) {
        btn.disabled = true;
        if (status) status.textContent = "This browser has no passkey support.";
        continue;
      }
      btn.addEventListener("click", async function () {
        btn.disabled = true;
        if (status) status.textContent = "Waiting for the passkey…";
        try {
          await passkey(btn);
        } catch (e) {
          if (status) status.textContent = "Passkey not accepted: " + e.message;
          btn.disabled = false;
        }
      });
    }
  });
})();

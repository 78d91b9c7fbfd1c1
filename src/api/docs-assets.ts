/*
 * The API reference page's own files: the HTML shell, a little CSS, and the script that starts Swagger UI
 * and logs in. Swagger UI itself comes from the swagger-ui-dist package (docs-page.ts serves its files).
 * No inline script or style: the page's Content-Security-Policy allows 'self' only.
 */

export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zimage API reference</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="stylesheet" href="/docs/assets/docs.css">
</head>
<body>
<header class="zi-bar">
  <h1>zimage API reference</h1>
  <a href="/zstack/v1/openapi.json">/zstack/v1/openapi.json</a>
  <form id="zi-login" autocomplete="on">
    <label>Account <input id="zi-account" name="account" value="admin" autocomplete="username" required></label>
    <label>Password <input id="zi-password" name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" id="zi-login-button">Log in</button>
    <button type="button" id="zi-logout" hidden>Log out</button>
    <span id="zi-status" role="status">Not logged in. The password is sent as its SHA-512 digest, as ZStack's clients do.</span>
  </form>
</header>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs.js"></script>
</body>
</html>
`;

export const DOCS_CSS = `
body { margin: 0; }
.zi-bar { position: sticky; top: 0; z-index: 10; display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px; padding: 12px 20px; background: #1b1f24; color: #eee; font-family: sans-serif; }
.zi-bar h1 { font-size: 20px; margin: 0; }
.zi-bar a { color: #8cc4ff; }
.zi-bar form { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
.zi-bar input { padding: 4px 6px; }
.zi-bar button { padding: 4px 12px; cursor: pointer; }
#zi-status { font-size: 13px; color: #cfd8dc; }
#zi-status.zi-ok { color: #9be59b; }
#zi-status.zi-error { color: #ff9c9c; }
`;

export const DOCS_JS = `'use strict';
(function () {
  // SHA-512 (FIPS 180-4) for pages served over plain http from another host, where crypto.subtle is absent.
  // The constants are derived as the standard defines them: fractional parts of square and cube roots of primes.
  var M = (1n << 64n) - 1n;
  function iroot(n, k) {
    var x = 1n << BigInt(Math.ceil(n.toString(2).length / Number(k)));
    for (;;) {
      var y = ((k - 1n) * x + n / x ** (k - 1n)) / k;
      if (y >= x) return x;
      x = y;
    }
  }
  var primes = [];
  for (var c = 2; primes.length < 80; c++) if (primes.every(function (p) { return c % p !== 0; })) primes.push(c);
  var K = primes.map(function (p) { return iroot(BigInt(p) << 192n, 3n) & M; });
  var H0 = primes.slice(0, 8).map(function (p) { return iroot(BigInt(p) << 128n, 2n) & M; });
  var rotr = function (x, n) { return ((x >> n) | (x << (64n - n))) & M; };
  function sha512Fallback(bytes) {
    var len = bytes.length, padded = new Uint8Array(Math.ceil((len + 17) / 128) * 128);
    padded.set(bytes);
    padded[len] = 0x80;
    var view = new DataView(padded.buffer);
    view.setBigUint64(padded.length - 8, BigInt(len) * 8n);
    var h = H0.slice(), w = new Array(80);
    for (var off = 0; off < padded.length; off += 128) {
      for (var t = 0; t < 80; t++) {
        if (t < 16) w[t] = view.getBigUint64(off + t * 8);
        else {
          var s0 = rotr(w[t - 15], 1n) ^ rotr(w[t - 15], 8n) ^ (w[t - 15] >> 7n);
          var s1 = rotr(w[t - 2], 19n) ^ rotr(w[t - 2], 61n) ^ (w[t - 2] >> 6n);
          w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & M;
        }
      }
      var a = h[0], b = h[1], cc = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
      for (t = 0; t < 80; t++) {
        var t1 = (hh + (rotr(e, 14n) ^ rotr(e, 18n) ^ rotr(e, 41n)) + ((e & f) ^ (~e & M & g)) + K[t] + w[t]) & M;
        var t2 = ((rotr(a, 28n) ^ rotr(a, 34n) ^ rotr(a, 39n)) + ((a & b) ^ (a & cc) ^ (b & cc))) & M;
        hh = g; g = f; f = e; e = (d + t1) & M; d = cc; cc = b; b = a; a = (t1 + t2) & M;
      }
      [a, b, cc, d, e, f, g, hh].forEach(function (v, i) { h[i] = (h[i] + v) & M; });
    }
    return h.map(function (v) { return v.toString(16).padStart(16, '0'); }).join('');
  }
  async function sha512Hex(text) {
    var bytes = new TextEncoder().encode(text);
    if (!(window.crypto && window.crypto.subtle)) return sha512Fallback(bytes);
    var digest = new Uint8Array(await window.crypto.subtle.digest('SHA-512', bytes));
    return Array.from(digest, function (x) { return x.toString(16).padStart(2, '0'); }).join('');
  }

  var ui = window.SwaggerUIBundle({
    url: '/zstack/v1/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    docExpansion: 'list',
    defaultModelsExpandDepth: 0,
    displayOperationId: true,
    displayRequestDuration: true,
    filter: true,
    tryItOutEnabled: true,
    validatorUrl: null,
  });
  window.ui = ui;
  window.zimageDocs = { sha512Hex: sha512Hex, sha512Fallback: sha512Fallback };

  var form = document.getElementById('zi-login');
  var status = document.getElementById('zi-status');
  var logoutButton = document.getElementById('zi-logout');
  var session = null;
  function show(text, kind) {
    status.textContent = text;
    status.className = kind ? 'zi-' + kind : '';
  }
  async function failure(res) {
    var text = await res.text();
    try {
      var body = JSON.parse(text);
      if (body && body.error) return body.error.code + ': ' + body.error.details;
    } catch (e) { /* plain text error */ }
    return 'HTTP ' + res.status + ': ' + text;
  }
  form.addEventListener('submit', async function (ev) {
    ev.preventDefault();
    var account = document.getElementById('zi-account').value;
    var passwordField = document.getElementById('zi-password');
    show('Logging in…');
    try {
      var password = await sha512Hex(passwordField.value);
      var res = await fetch('/zstack/v1/accounts/login', {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json;charset=UTF-8' },
        body: JSON.stringify({ logInByAccount: { accountName: account, password: password } }),
      });
      if (res.status !== 200) return show('Login refused: ' + (await failure(res)), 'error');
      session = (await res.json()).inventory.uuid;
      passwordField.value = '';
      ui.preauthorizeApiKey('OAuth', 'OAuth ' + session);
      logoutButton.hidden = false;
      show('Logged in as ' + account + ': "Try it out" calls send Authorization: OAuth ' + session, 'ok');
    } catch (err) {
      show('Login failed: ' + err.message, 'error');
    }
  });
  logoutButton.addEventListener('click', async function () {
    if (session) await fetch('/zstack/v1/accounts/sessions/' + encodeURIComponent(session), { method: 'DELETE' });
    session = null;
    ui.authActions.logout(['OAuth']);
    logoutButton.hidden = true;
    show('Logged out.');
  });
})();
`;

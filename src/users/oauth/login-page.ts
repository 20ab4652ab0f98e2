/** The authorization endpoint's login page: plain HTML, no script, nothing fetched from elsewhere. */
const escape = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export const LOGIN_PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  // No framing (clickjacking of the login form), no scripts, no third-party anything.
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

export function loginPage(input: { requestId: string; clientName: string; redirectHost: string; resource: string; providers: string[]; error?: string | undefined; user?: string | undefined }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in to Mandate</title>
<style>body{font-family:system-ui,sans-serif;max-width:26em;margin:4em auto;padding:0 1em}label{display:block;margin:.8em 0 .2em}input{width:100%;padding:.4em;box-sizing:border-box}button{margin-top:1.2em;padding:.5em 1.2em}.error{color:#a00}</style></head>
<body>
<h1>Sign in to Mandate</h1>
<p><strong>${escape(input.clientName)}</strong> (returning to <code>${escape(input.redirectHost)}</code>) asks to use <code>${escape(input.resource)}</code> as you. Sign in only if you started this from that application.</p>
${input.error ? `<p class="error" role="alert">${escape(input.error)}</p>` : ""}
<form method="post" action="/oauth/authorize">
<input type="hidden" name="request_id" value="${escape(input.requestId)}">
<label for="user">User name</label><input id="user" name="user" autocomplete="username" required value="${escape(input.user ?? "")}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="totp">Authenticator code</label><input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required>
<button type="submit">Sign in</button>
</form>
${input.providers
  .map(
    (p) => `<form method="post" action="/oauth/sso"><input type="hidden" name="request_id" value="${escape(input.requestId)}"><input type="hidden" name="provider" value="${escape(p)}"><button type="submit">Sign in with ${escape(p)}</button></form>`,
  )
  .join("\n")}
</body></html>`;
}

export function errorPage(message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Mandate</title></head><body style="font-family:system-ui,sans-serif;margin:4em auto;max-width:30em"><h1>Cannot sign in</h1><p>${escape(message)}</p></body></html>`;
}

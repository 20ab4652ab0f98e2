import { timingSafeEqual } from "node:crypto";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { MandateClient } from "../../client/http-client.js";
import { MandateError } from "../../errors/index.js";
import type { UserCredential } from "../../users/index.js";
import { openInBrowser } from "../browser.js";
import type { Io } from "../output.js";

const CALLBACK_PATH = "/callback";
const LOGIN_TIMEOUT_MS = 5 * 60_000;

interface Callback {
  code?: string | undefined;
  state?: string | undefined;
  error?: string | undefined;
  errorDescription?: string | undefined;
}

const PAGE = (message: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>Mandate</title></head><body style="font-family:sans-serif;margin:3em"><p>${message}</p></body></html>`;

/**
 * The redirect target of an SSO login (RFC 8252 §7.3): a one-shot HTTP listener on the
 * loopback interface, at a port the OS picks, that takes the first callback and closes.
 */
async function loopbackListener(): Promise<{ redirectUri: string; callback: Promise<Callback>; close(): void }> {
  let deliver!: (value: Callback) => void;
  const callback = new Promise<Callback>((resolve) => (deliver = resolve));
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (request.method !== "GET" || url.pathname !== CALLBACK_PATH) {
      response.writeHead(404).end();
      return;
    }
    const params = url.searchParams;
    const result: Callback = { code: params.get("code") ?? undefined, state: params.get("state") ?? undefined, error: params.get("error") ?? undefined, errorDescription: params.get("error_description") ?? undefined };
    response.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    response.end(PAGE(result.error ? "Login failed; see the terminal." : "Login received. You can close this window and return to the terminal."));
    deliver(result);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return { redirectUri: `http://127.0.0.1:${port}${CALLBACK_PATH}`, callback, close: () => server.close() };
}

function sameState(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * `mandate login --sso NAME`: the control plane starts an authorization code flow (it
 * holds state, nonce, PKCE verifier and any client secret), the browser comes back to
 * the loopback listener, and the code goes to the control plane, which exchanges it,
 * verifies the ID token and issues the user certificate.
 */
export async function loginWithSso(io: Io, client: MandateClient, input: { provider: string; csrPem: string; ttlSeconds?: number | undefined; openBrowser: boolean }): Promise<UserCredential> {
  const listener = await loopbackListener();
  try {
    const start = await client.request<{ loginId: string; authorizationUrl: string; expiresAt: string }>("POST", "/v1/login/sso/start", { provider: input.provider, redirectUri: listener.redirectUri });
    const expectedState = new URL(start.authorizationUrl).searchParams.get("state") ?? "";
    io.err(`To log in with ${input.provider}, open this URL in a browser on this machine:\n\n  ${start.authorizationUrl}\n\nWaiting for the provider to send you back to ${listener.redirectUri} …`);
    if (input.openBrowser) await openInBrowser(start.authorizationUrl);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MandateError("LOGIN_FAILED", `no answer from ${input.provider} within ${LOGIN_TIMEOUT_MS / 60_000} minutes`)), LOGIN_TIMEOUT_MS);
      timer.unref();
    });
    const result = await Promise.race([listener.callback, timeout]).finally(() => clearTimeout(timer));
    if (result.error) throw new MandateError("LOGIN_FAILED", `${input.provider} refused the login: ${result.error}${result.errorDescription ? ` (${result.errorDescription})` : ""}`);
    if (!result.state || !expectedState || !sameState(result.state, expectedState)) throw new MandateError("LOGIN_FAILED", "the login callback's state does not match this login; ignoring it (a stale or forged redirect)");
    if (!result.code) throw new MandateError("LOGIN_FAILED", "the login callback carries no authorization code");
    return await client.request<UserCredential>("POST", "/v1/login/sso/finish", {
      loginId: start.loginId,
      state: result.state,
      code: result.code,
      csr: input.csrPem,
      ...(input.ttlSeconds ? { ttlSeconds: input.ttlSeconds } : {}),
    });
  } finally {
    listener.close();
  }
}

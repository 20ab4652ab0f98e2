/**
 * Loaded (`--import`) into the Portkey gateway's process by bench/llm.ts, before the gateway.
 *
 * Why: @portkey-ai/gateway 1.15.2 streams by building `new Response(stream, upstreamResponse)`
 * and then appending its `x-portkey-*` headers to the result. @hono/node-server ≥ 1.14.2
 * (which npm installs for it) replaces the global `Response` with a lighter class that, for a
 * stream body, keeps the init's `Headers` object as it is — here the upstream fetch
 * response's, whose guard is `immutable` — so every streamed request fails with HTTP 500
 * (`TypeError: immutable` in `updateHeaders`; Portkey-AI/gateway issues #1389 and #1550, the
 * fix proposed in pull request #1551 copies the headers before appending). The same gateway
 * with @hono/node-server 1.14.1 streams. Giving the gateway fetch responses whose headers are
 * its own copy (the native `Response` constructor copies them with the mutable `response`
 * guard) is that fix applied from outside: the body stream is handed over untouched, so
 * chunks still pass through as they arrive and time to first byte is the gateway's own.
 *
 * The gateway can also reach out on its own (plugins validate URLs, query DNS over HTTPS):
 * anything but loopback is refused, so the benchmark never sends traffic elsewhere.
 */
const nativeFetch = globalThis.fetch;
const NativeResponse = globalThis.Response;
const loopback = new Set(["127.0.0.1", "localhost", "[::1]"]);

globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (!loopback.has(url.hostname)) throw new TypeError(`the benchmark's gateway may only call loopback, not ${url.host}`);
  const upstream = await nativeFetch(input, init);
  return new NativeResponse(upstream.body, { status: upstream.status, statusText: upstream.statusText, headers: upstream.headers });
};

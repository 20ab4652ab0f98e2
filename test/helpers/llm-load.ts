import { Agent as UndiciAgent, request } from "undici";

export interface LoadResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** Fires `n` requests at once over `connections` sockets and returns every answer. */
export async function burst(url: string, options: { n: number; ca: string; authorization: string; body: (i: number) => unknown; connections?: number; onResult?: (r: LoadResult) => void }): Promise<LoadResult[]> {
  const dispatcher = new UndiciAgent({ connect: { ca: options.ca }, connections: options.connections ?? 100, pipelining: 1 });
  try {
    return await Promise.all(
      Array.from({ length: options.n }, async (_, i) => {
        const res = await request(url, { method: "POST", dispatcher, headers: { "content-type": "application/json", authorization: options.authorization }, body: JSON.stringify(options.body(i)) });
        const text = await res.body.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* streams and errors stay text */
        }
        const result = { status: res.statusCode, headers: res.headers, body };
        options.onResult?.(result);
        return result;
      }),
    );
  } finally {
    await dispatcher.close();
  }
}

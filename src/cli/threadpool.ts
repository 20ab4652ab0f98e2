import { availableParallelism } from "node:os";

/**
 * Signing and verification run on libuv's threadpool (4 threads by default). On a
 * small machine those threads preempt the event loop that feeds them; one thread per
 * spare core keeps both busy (measured: +25% issuance on 2 cores). Must be imported
 * before anything uses the threadpool; an explicit UV_THREADPOOL_SIZE wins.
 */
if (!process.env.UV_THREADPOOL_SIZE) {
  process.env.UV_THREADPOOL_SIZE = String(Math.min(4, Math.max(1, availableParallelism() - 1)));
}

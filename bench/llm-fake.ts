import { FakeProvider } from "../test/fake-provider/server.js";

/** The fake provider in a process of its own for the LLM benchmark; prints its URL. */
const fake = new FakeProvider({ apiKey: process.env.FAKE_KEY });
await fake.start();
// The benchmark sends many thousands of requests: keeping each one's record would grow without bound.
setInterval(() => fake.reset(), 1000).unref();
process.stdout.write(`${JSON.stringify({ url: fake.url })}\n`);
process.on("SIGTERM", () => void fake.close().then(() => process.exit(0)));

import { MandateError } from "../errors/index.js";

/**
 * Where commands read secrets from: stdin for scripts (`--password-stdin`), the terminal
 * with echo off for people. Never argv (visible in `ps`) and never the environment.
 */
export interface SecretInput {
  readStdin(what: string): Promise<string>;
  promptHidden(question: string): Promise<string>;
}

const MAX_SECRET_BYTES = 4096;

const processSecretInput: SecretInput = {
  async readStdin(what) {
    if (process.stdin.isTTY) throw new MandateError("INVALID_ARGUMENT", `${what}: stdin is a terminal; pipe the secret in, or leave out --password-stdin to be prompted`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of process.stdin) {
      size += (chunk as Buffer).length;
      if (size > MAX_SECRET_BYTES) throw new MandateError("INVALID_ARGUMENT", `${what}: more than ${MAX_SECRET_BYTES} bytes on stdin`);
      chunks.push(chunk as Buffer);
    }
    // One trailing newline is what `echo` and here-strings add; it is not part of the secret.
    return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  },
  promptHidden(question) {
    const stdin = process.stdin;
    if (!stdin.isTTY) return Promise.reject(new MandateError("INVALID_ARGUMENT", `no terminal to ask "${question.trim()}" on; use --password-stdin and --totp in scripts`));
    return new Promise((resolve, reject) => {
      process.stderr.write(question);
      let value = "";
      stdin.setRawMode(true);
      stdin.resume();
      stdin.setEncoding("utf8");
      const done = (error?: Error) => {
        stdin.setRawMode(false);
        stdin.pause();
        stdin.removeListener("data", onData);
        process.stderr.write("\n");
        if (error) reject(error);
        else resolve(value);
      };
      const onData = (chunk: string) => {
        for (const char of chunk) {
          if (char === "\r" || char === "\n" || char === "\u0004") return done();
          if (char === "\u0003") return done(new MandateError("INVALID_ARGUMENT", "interrupted"));
          if (char === "\u007f" || char === "\b") value = value.slice(0, -1);
          else if (value.length < MAX_SECRET_BYTES) value += char;
        }
      };
      stdin.on("data", onData);
    });
  },
};

let current: SecretInput = processSecretInput;

export function secretInput(): SecretInput {
  return current;
}

/** In-process callers (tests, embedders) supply the answers a terminal would; returns the restorer. */
export function useSecretInput(input: SecretInput): () => void {
  const previous = current;
  current = input;
  return () => {
    current = previous;
  };
}

import { readFile, stat } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { MandateError } from "../errors/index.js";

/**
 * Provider keys, held only by the proxy: read from the proxy's own environment or from a
 * secrets file (a YAML/JSON map of name → key, readable by the proxy's user only). They
 * are never returned by an API, printed, or written to the audit log; a provider names
 * where its key comes from, never the key.
 */
export class ProviderSecrets {
  private constructor(
    private readonly file: Map<string, string>,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async load(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ProviderSecrets> {
    if (!path) return new ProviderSecrets(new Map(), env);
    let text: string;
    try {
      const info = await stat(path);
      // A key file others can read is a key others have.
      if ((info.mode & 0o077) !== 0) throw new MandateError("CONFIG_INVALID", `the LLM secrets file ${path} is readable by group or others; chmod 600 it`);
      text = await readFile(path, "utf8");
    } catch (error) {
      if (error instanceof MandateError) throw error;
      throw new MandateError("CONFIG_INVALID", `cannot read the LLM secrets file ${path}: ${(error as Error).message}`);
    }
    let document: unknown;
    try {
      document = parseYaml(text);
    } catch {
      throw new MandateError("CONFIG_INVALID", `the LLM secrets file ${path} is not valid YAML or JSON`);
    }
    const map = new Map<string, string>();
    if (document && typeof document === "object") {
      for (const [name, value] of Object.entries(document as Record<string, unknown>)) {
        if (typeof value !== "string" || value.length === 0) throw new MandateError("CONFIG_INVALID", `the LLM secrets file ${path}: entry ${JSON.stringify(name)} must be a non-empty string`);
        map.set(name, value);
      }
    } else if (document !== null && document !== undefined) {
      throw new MandateError("CONFIG_INVALID", `the LLM secrets file ${path} must be a map of name: key`);
    }
    return new ProviderSecrets(map, env);
  }

  /** The key for a provider, or undefined when it needs none; a named but missing key is an error. */
  resolve(provider: string, source: { apiKeyEnv?: string | undefined; apiKeySecret?: string | undefined }): string | undefined {
    if (source.apiKeyEnv) {
      const value = this.env[source.apiKeyEnv];
      if (!value) throw new MandateError("CONFIG_INVALID", `provider ${provider}: environment variable ${source.apiKeyEnv} is not set in the proxy's environment`);
      return value;
    }
    if (source.apiKeySecret) {
      const value = this.file.get(source.apiKeySecret);
      if (!value) throw new MandateError("CONFIG_INVALID", `provider ${provider}: the secrets file has no entry ${JSON.stringify(source.apiKeySecret)}`);
      return value;
    }
    return undefined;
  }
}

import { join } from "node:path";
import { type AgentCredentials, readCredentials } from "../../src/agent/index.js";
import { MandateClient } from "../../src/client/http-client.js";
import type { ControlPlane } from "../../src/server/index.js";
import { tempDir } from "./backends.js";
import { mandate } from "./cli.js";

/** An agent registered and joined through the real CLI flow, as an agent's host would. */
export interface TestAgent {
  name: string;
  spiffeId: string;
  credentialDir: string;
  credentials: AgentCredentials;
  /** An mTLS client presenting this agent's X509-SVID. */
  client(): MandateClient;
  /** A JWT-SVID for `audience` (default: the server's SPIFFE ID, which every proxy accepts). */
  jwtSvid(audience?: string): Promise<string>;
}

export async function joinTestAgent(plane: ControlPlane, name: string, options: { roles?: string[]; labels?: string } = {}): Promise<TestAgent> {
  const add = await mandate("agents", "add", name, ...(options.roles ?? []).flatMap((r) => ["--role", r]), ...(options.labels ? ["--labels", options.labels] : []), "--data-dir", plane.dataDir, "--format", "json");
  if (add.code !== 0) throw new Error(`agents add ${name} failed: ${add.stderr}`);
  const credentialDir = join(await tempDir("mandate-agent-"), "creds");
  const joined = await mandate("daemon", "--auth-server", plane.url, "--join-token", add.json().token, "--out", credentialDir, "--oneshot");
  if (joined.code !== 0) throw new Error(`join of ${name} failed: ${joined.stderr}`);
  const credentials = (await readCredentials(credentialDir))!;
  const serverId = `spiffe://${plane.context.authority.trustDomain}/mandate/server`;
  const client = () => new MandateClient(plane.url, { caPem: credentials.bundlePem, certPem: credentials.svidPem, keyPem: credentials.keyPem });
  return {
    name,
    spiffeId: credentials.state.spiffeId,
    credentialDir,
    credentials,
    client,
    async jwtSvid(audience = serverId) {
      const c = client();
      try {
        return (await c.request<{ token: string }>("POST", "/v1/svid/jwt", { audience: [audience] })).token;
      } finally {
        c.close();
      }
    },
  };
}

/** Who is calling, as established from an mTLS X509-SVID. */
export interface Caller {
  kind: "agent" | "admin" | "server" | "workload" | "user";
  spiffeId: string;
  agent?: string | undefined;
  /** set for `spiffe://<td>/user/<name>` identities (a person logged in with `mandate login`) */
  user?: string | undefined;
  serialHex: string;
  notAfter: Date;
}

/** The path prefix of identities the control plane issues to itself and its admins. */
export const ADMIN_PATH = "/mandate/admin";
export const SERVER_PATH = "/mandate/server";

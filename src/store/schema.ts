import type { Generated } from "kysely";

/**
 * The one schema every backend shares. Times are integer milliseconds since the
 * epoch (bigint on Postgres, parsed back to number) so both dialects compare and
 * index them the same way; structured fields are JSON text for the same reason.
 */
export interface MetaTable {
  key: string;
  value: string;
}

export type AuthorityKind = "root" | "intermediate";
export type AuthorityState = "prepared" | "active" | "retired" | "removed";

export interface CaAuthorityTable {
  id: string;
  kind: AuthorityKind;
  parent_id: string | null;
  cert_pem: string;
  key_pem: string;
  not_before: number;
  not_after: number;
  state: AuthorityState;
  created_at: number;
  activated_at: number | null;
  retired_at: number | null;
}

export interface JwtKeyTable {
  kid: string;
  public_jwk: string;
  key_pem: string;
  state: AuthorityState;
  created_at: number;
  activated_at: number | null;
  retired_at: number | null;
}

export interface AgentTable {
  name: string;
  spiffe_id: string;
  roles: string;
  labels: string;
  created_at: number;
  created_by: string;
  /** JSON array of workload selectors, e.g. ["unix:uid:1000"]. */
  selectors: string;
}

export interface JoinTokenTable {
  token_hash: string;
  agent_name: string;
  expires_at: number;
  created_at: number;
  created_by: string;
  used_at: number | null;
  used_by_instance: string | null;
}

export interface InstanceTable {
  id: string;
  agent_name: string;
  spiffe_id: string;
  hostname: string;
  join_method: string;
  generation: number;
  created_at: number;
  last_renewed_at: number;
  svid_serial: string;
  svid_expires_at: number;
  version: string;
  last_presented_generation?: number | null;
  /** SHA-256 (hex) of the last renewal proof accepted for this instance: the same proof never renews twice. */
  last_proof_sha256?: string | null;
}

export interface IssuedSvidTable {
  serial: string;
  spiffe_id: string;
  agent_name: string | null;
  instance_id: string | null;
  authority_id: string;
  not_after: number;
  issued_at: number;
  generation?: number | null;
  /** SHA-256 (hex) of the certificate's DER; null for certificates issued before renewal proofs existed. */
  cert_sha256?: string | null;
}

export type LockTargetKind = "agent" | "serial" | "instance" | "spiffe_id";

export interface LockTable {
  id: string;
  target_kind: LockTargetKind;
  target_value: string;
  reason: string;
  created_by: string;
  created_at: number;
  expires_at: number | null;
}

export interface RoleTable {
  name: string;
  /** the role's YAML document as applied */
  source: string;
  created_at: number;
  updated_at: number;
  updated_by: string;
}

export interface RuntimeAllowlistTable {
  effect: "allow" | "deny";
  pattern: string;
  reason: string | null;
  created_at: number;
  created_by: string;
}

export interface AuditEventTable {
  seq: Generated<number>;
  id: string;
  time: number;
  type: string;
  code: string;
  actor_spiffe_id: string | null;
  actor_agent: string | null;
  actor_user: string | null;
  task_id: string | null;
  decision: string | null;
  outcome: string;
  body: string;
  chain_seq: number | null;
  session_id?: string | null;
  delegation_id?: string | null;
  leaf_hash: string | null;
  chain_hash: string | null;
}

export interface AuditChainHeadTable {
  id: number;
  seq: number;
  chain_hash: string;
}

export interface AuditCheckpointTable {
  tree_size: number;
  root_hash: string;
  note: string;
  created_at: number;
}

export interface JoinRuleTable {
  id: string;
  method: string;
  agent_name: string;
  issuer: string;
  audience: string;
  /** A JWKS document (JSON) given with --jwks-file, or null. */
  jwks: string | null;
  jwks_url: string | null;
  /** JSON array of claim conditions (objects of claim → glob); any one must match. */
  conditions: string;
  created_at: number;
  created_by: string;
}

export interface McpServerTable {
  name: string;
  transport: "stdio" | "http" | "sse" | "db";
  command: string | null;
  url: string | null;
  labels: string;
  owner: string;
  stateless: number;
  drift_mode: "hide" | "alert";
  secret_action: "block" | "redact" | "flag";
  created_at: number;
  created_by: string;
}

export interface JoinTokenUseTable {
  /** "sha256:<token hash>" or "jti:<hash of issuer and jti>". */
  key: string;
  rule_id: string;
  instance_id: string;
  used_at: number;
  expires_at: number;
}

export interface McpServerSecretTable {
  server: string;
  kind: "env" | "header";
  name: string;
  value: string;
}

export interface McpDefinitionTable {
  id: string;
  server: string;
  kind: "tool" | "prompt" | "resource";
  name: string;
  hash: string;
  definition: string;
  status: "approved" | "pending" | "rejected";
  findings: string;
  first_seen_at: number;
  decided_at: number | null;
  decided_by: string | null;
  previous_hash: string | null;
}

export interface LlmProviderTable {
  name: string;
  /** the provider's configuration as JSON; never a key (keys come from env or the secrets file) */
  definition: string;
  created_at: number;
  created_by: string;
}

export interface DbDatabaseTable {
  name: string;
  /** the registered database as JSON (host, port, users and where their passwords come from); never a password */
  definition: string;
  created_at: number;
  created_by: string;
}

export interface LlmModelTable {
  name: string;
  definition: string;
  created_at: number;
  created_by: string;
}

export interface LlmUsageTable {
  id: string;
  time: number;
  agent: string | null;
  team: string | null;
  delegation_id: string | null;
  task_id: string | null;
  model: string;
  provider: string | null;
  upstream_model: string | null;
  endpoint: string;
  status: string;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
  /** integer billionths of a dollar, so sums are exact on both backends */
  cost_nano_usd: number;
  estimated: number;
  latency_ms: number;
  event_id: string | null;
}

export interface LlmTranscriptTable {
  id: string;
  time: number;
  event_id: string;
  agent: string | null;
  delegation_id: string | null;
  task_id: string | null;
  model: string;
  prompt: string;
  response: string;
  truncated: number;
  guardrails: string;
}

export interface DelegationTable {
  id: string;
  parent_id: string | null;
  root_id: string;
  depth: number;
  task: string;
  delegator_kind: "user" | "agent";
  delegator_name: string;
  /** the delegate */
  agent: string;
  /** JSON DelegationScope */
  scope: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  revoke_reason: string | null;
}

export interface AccessRequestTable {
  id: string;
  status: "pending" | "approved" | "denied" | "consumed" | "expired";
  requester_kind: "agent" | "user";
  requester: string;
  delegation_id: string | null;
  task: string | null;
  action: string;
  resource: string;
  args_hash: string | null;
  rule: string;
  /** requester, delegation, resource and arguments hash in one indexed string */
  match_key: string;
  created_at: number;
  expires_at: number;
  decided_at: number | null;
  decided_by: string | null;
  decision_reason: string | null;
  grant_mode: "once" | "window" | null;
  valid_until: number | null;
  used_at: number | null;
  uses: number;
}

export interface UserTable {
  name: string;
  /** JSON array of role names */
  roles: string;
  /** JSON object of labels */
  labels: string;
  /** `$scrypt$…`; null for users who log in only through SSO */
  password_hash: string | null;
  /** base32 TOTP secret; null for SSO users */
  totp_secret: string | null;
  /** the last TOTP step accepted: no code of that step or earlier is accepted again */
  totp_last_step: number | null;
  disabled: number;
  sso_provider: string | null;
  sso_subject: string | null;
  email: string | null;
  created_at: number;
  created_by: string;
  updated_at: number;
  last_login_at: number | null;
}

export interface SsoProviderTable {
  name: string;
  /** JSON SsoProvider definition (no secrets: the client secret is named by an env var) */
  definition: string;
  created_at: number;
  created_by: string;
}

export interface SsoLoginTable {
  id: string;
  provider: string;
  state: string;
  nonce: string;
  code_verifier: string;
  redirect_uri: string;
  expires_at: number;
  /** set when the SSO login was started from the OAuth login page */
  oauth_request?: string | null;
}

export interface OAuthClientTable {
  client_id: string;
  /** JSON RFC 7591 client metadata as registered */
  metadata: string;
  created_at: number;
  created_from: string;
}

export interface OAuthRequestTable {
  id: string;
  client_id: string;
  redirect_uri: string;
  code_challenge: string;
  resource: string;
  scope: string;
  state: string | null;
  expires_at: number;
  /** SHA-256 of the cookie given to the browser that opened the login page */
  browser_binding?: string | null;
}

export interface OAuthCodeTable {
  code_hash: string;
  /** JSON of the authorization request the code answers */
  request: string;
  user_name: string;
  expires_at: number;
}

export interface OAuthTokenTable {
  token_hash: string;
  client_id: string;
  user_name: string;
  resource: string;
  scope: string;
  created_at: number;
  expires_at: number;
  /** the refresh-token family it was issued with (revoked together) */
  family?: string | null;
}

export interface OAuthRefreshTokenTable {
  token_hash: string;
  family: string;
  client_id: string;
  user_name: string;
  resource: string;
  scope: string;
  created_at: number;
  family_expires_at: number;
  used_at: number | null;
}

export interface Database {
  meta: MetaTable;
  ca_authorities: CaAuthorityTable;
  jwt_keys: JwtKeyTable;
  agents: AgentTable;
  join_tokens: JoinTokenTable;
  instances: InstanceTable;
  issued_svids: IssuedSvidTable;
  locks: LockTable;
  roles: RoleTable;
  runtime_allowlist: RuntimeAllowlistTable;
  audit_events: AuditEventTable;
  audit_chain_head: AuditChainHeadTable;
  audit_checkpoints: AuditCheckpointTable;
  join_rules: JoinRuleTable;
  join_token_uses: JoinTokenUseTable;
  mcp_servers: McpServerTable;
  mcp_server_secrets: McpServerSecretTable;
  mcp_definitions: McpDefinitionTable;
  llm_providers: LlmProviderTable;
  db_databases: DbDatabaseTable;
  llm_models: LlmModelTable;
  llm_usage: LlmUsageTable;
  llm_transcripts: LlmTranscriptTable;
  users: UserTable;
  sso_providers: SsoProviderTable;
  sso_logins: SsoLoginTable;
  oauth_clients: OAuthClientTable;
  oauth_requests: OAuthRequestTable;
  oauth_codes: OAuthCodeTable;
  oauth_tokens: OAuthTokenTable;
  oauth_refresh_tokens: OAuthRefreshTokenTable;
  delegations: DelegationTable;
  access_requests: AccessRequestTable;
}

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { MandateError } from "../../errors/index.js";
import type { IssuedX509Svid } from "../../identity/index.js";
import type { ServerContext } from "../context.js";
import { parseRequest } from "../validate.js";

const JoinBody = z.strictObject({
  // "token" is a one-time Mandate join token; the others present a platform-minted OIDC token.
  method: z.enum(["token", "kubernetes", "github", "oidc"]).default("token"),
  agent: z.string().min(1).max(64).optional(),
  token: z.string().min(1).max(16_384),
  csr: z.string().min(1).max(16_384),
  hostname: z.string().max(253).optional(),
  version: z.string().max(64).optional(),
});
const RenewBody = z.strictObject({ csr: z.string().min(1).max(16_384) });
const ProofRenewBody = z.strictObject({ csr: z.string().min(1).max(16_384), proof: z.string().min(1).max(8192) });
const DenialsBody = z.strictObject({
  denials: z
    .array(
      z.strictObject({
        rpc: z.string().min(1).max(64),
        at: z.number().int().nonnegative(),
        pid: z.number().int().nonnegative(),
        uid: z.number().int().nonnegative(),
        gid: z.number().int().nonnegative(),
        path: z.string().max(4096).nullable(),
        reasons: z.array(z.string().max(1024)).max(16),
        count: z.number().int().positive(),
      }),
    )
    .min(1)
    .max(100),
});
const JwtBody = z.strictObject({
  audience: z.array(z.string().min(1).max(512)).min(1).max(16),
  ttlSeconds: z.number().int().positive().optional(),
});

async function svidResponse(ctx: ServerContext, agentName: string, instanceId: string, svid: IssuedX509Svid, selectors?: string[]) {
  return {
    // The daemon learns who on its host may have this identity with every SVID it receives.
    selectors: selectors ?? (await ctx.agents.get(agentName)).selectors,
    spiffeId: svid.spiffeId,
    instanceId,
    serial: svid.serialHex,
    // A renewal proof names the generation of the SVID it presents.
    ...(svid.generation === undefined ? {} : { generation: svid.generation }),
    expiresAt: svid.notAfter.toISOString(),
    svidPem: svid.chainPem,
    trustDomain: ctx.authority.trustDomain,
    bundleSequence: ctx.authority.bundleSequence,
    bundlePem: ctx.authority.x509AuthoritiesPem(),
    jwtBundle: ctx.authority.jwtBundleDocument(),
  };
}

function attestedJoins(ctx: ServerContext) {
  if (!ctx.attestedJoins) throw new MandateError("CONFIG_INVALID", "this control plane does not accept token-less joins");
  return ctx.attestedJoins;
}

/** Join, renewal, JWT-SVIDs and the trust bundle: what agents call. */
export function registerIdentityRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/.well-known/spiffe-bundle", async (_request, reply) => {
    const bundle = ctx.authority.bundle();
    void reply.header("content-type", "application/json").header("cache-control", "no-cache");
    return bundle.json;
  });

  app.get("/v1/bundle", async () => ({
    trustDomain: ctx.authority.trustDomain,
    bundleSequence: ctx.authority.bundleSequence,
    caPin: ctx.authority.caPin,
    bundlePem: ctx.authority.x509AuthoritiesPem(),
    jwtBundle: ctx.authority.jwtBundleDocument(),
  }));

  app.post("/v1/join", async (request) => {
    const { method, agent, ...body } = parseRequest(JoinBody, request.body);
    const result =
      method === "token"
        ? await ctx.joins.join({ ...body, address: request.ip })
        : await attestedJoins(ctx).join({ ...body, method, agent, address: request.ip });
    return svidResponse(ctx, result.agent, result.instanceId, result.svid);
  });

  app.post("/v1/svid/x509", async (request) => {
    const caller = await ctx.auth.authenticate(request, "identity.renew", "agent");
    const body = parseRequest(RenewBody, request.body);
    const result = await ctx.svids.renew(caller, body.csr);
    return svidResponse(ctx, caller.agent!, result.instanceId, result.svid);
  });

  // Renewal by proof of possession: no client certificate on the connection, which may be kept alive.
  app.post("/v1/svid/x509/proof", async (request) => {
    const body = parseRequest(ProofRenewBody, request.body);
    const result = await ctx.svids.renewWithProof({ ...body, address: request.ip });
    return svidResponse(ctx, result.agent, result.instanceId, result.svid, result.selectors);
  });

  // A daemon reports local processes it refused on the Workload API: they become audit events.
  app.post("/v1/workload/denials", async (request) => {
    const caller = await ctx.auth.authenticate(request, "workload.attestation_denied", "agent");
    const body = parseRequest(DenialsBody, request.body);
    for (const denial of body.denials) {
      await ctx.audit.append({
        type: "workload.attestation_denied",
        code: "PERMISSION_DENIED",
        actor: { kind: "agent", spiffeId: caller.spiffeId, ...(caller.agent ? { agent: caller.agent } : {}) },
        target: { pid: denial.pid, uid: denial.uid, gid: denial.gid, path: denial.path },
        decision: { allow: false, reasons: denial.reasons.length ? denial.reasons : ["no workload selector matches"] },
        outcome: { status: "error", error: "PERMISSION_DENIED", message: `the daemon refused ${denial.rpc} to pid ${denial.pid}` },
        details: { rpc: denial.rpc, count: denial.count, observedAt: new Date(denial.at).toISOString(), reportedBy: caller.serialHex },
      });
    }
    return { recorded: body.denials.length };
  });

  app.post("/v1/svid/jwt", async (request) => {
    const caller = await ctx.auth.authenticate(request, "identity.jwt");
    const body = parseRequest(JwtBody, request.body);
    const result = await ctx.svids.mintJwtSvid(caller, body);
    return { token: result.token, spiffeId: result.spiffeId, expiresAt: result.expiresAt.toISOString() };
  });
}

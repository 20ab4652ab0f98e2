import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Caller, Lock } from "../identity/index.js";
import type { ServerContext } from "../server/context.js";
import { parseRequest } from "../server/validate.js";
import type { UserLoginService } from "./login-service.js";
import { MAX_PASSWORD_LENGTH } from "./password.js";
import { registerSsoRoutes } from "./sso/routes.js";
import type { SsoLoginService } from "./sso/sso-login.js";

// "me" is the caller's own record (GET /v1/users/me), so no user may be named that.
const NameParam = z.strictObject({ name: z.string().min(1).max(64) });
const Roles = z.array(z.string().min(1).max(64)).max(64);
const Labels = z.record(z.string().max(64), z.string().max(253));
const CreateUserBody = z.strictObject({
  name: z.string().min(1).max(64),
  roles: Roles.default([]),
  labels: Labels.default({}),
  password: z.string().min(1).max(MAX_PASSWORD_LENGTH).optional(),
});
const UpdateUserBody = z.strictObject({
  roles: Roles.optional(),
  labels: Labels.optional(),
  disabled: z.boolean().optional(),
  resetPassword: z.union([z.literal(true), z.string().min(1).max(MAX_PASSWORD_LENGTH)]).optional(),
  resetTotp: z.boolean().optional(),
});
const LoginBody = z.strictObject({
  user: z.string().min(1).max(128),
  password: z.string().min(1).max(MAX_PASSWORD_LENGTH),
  totp: z.string().min(1).max(16).optional(),
  csr: z.string().min(1).max(16_384),
  ttlSeconds: z.number().int().positive().max(30 * 24 * 3600).optional(),
});

/** The user a request's certificate names; routes for people only. */
export async function requireUser(ctx: ServerContext, request: FastifyRequest, attempted: string): Promise<Caller & { user: string }> {
  const caller = await ctx.auth.authenticate(request, attempted, "user");
  return caller as Caller & { user: string };
}

/**
 * Locks every live certificate of a user, by serial, until it would have expired: what
 * disabling or removing a user does to sessions already handed out.
 */
async function lockLiveCertificates(ctx: ServerContext, spiffeId: string, reason: string, by: string): Promise<Lock[]> {
  const t = ctx.now();
  const live = await ctx.store.db.selectFrom("issued_svids").select(["serial", "not_after"]).where("spiffe_id", "=", spiffeId).where("not_after", ">", t).execute();
  const locks: Lock[] = [];
  for (const cert of live) locks.push(await ctx.locks.add({ kind: "serial", value: cert.serial, reason, createdBy: by, ttlMs: cert.not_after - t + 60_000 }));
  return locks;
}

/** Users (admin), local login, and the logged-in user's own routes. */
export function registerUserRoutes(app: FastifyInstance, ctx: ServerContext, login: UserLoginService): SsoLoginService {
  const users = login.users;
  const sso = registerSsoRoutes(app, ctx, login);

  app.post("/v1/users", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(CreateUserBody, request.body);
    const { user, secrets } = await users.createLocal({ ...body, createdBy: caller.spiffeId });
    await ctx.audit.append({
      type: "user.create",
      code: "OK",
      actor: { kind: "admin", spiffeId: caller.spiffeId },
      target: { user: user.name, spiffeId: user.spiffeId },
      outcome: { status: "ok" },
      details: { roles: user.roles, labels: user.labels, passwordGenerated: secrets.password !== undefined },
    });
    return { user, ...secrets, caPin: ctx.authority.caPin, authServer: ctx.settings.publicUrl };
  });

  app.get("/v1/users", async (request) => {
    await ctx.auth.requireAdmin(request);
    return { users: await users.list() };
  });

  app.get("/v1/users/:name", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const user = await users.describe(name);
    const t = ctx.now();
    const certificates = await ctx.store.db.selectFrom("issued_svids").select(["serial", "not_after", "issued_at"]).where("spiffe_id", "=", user.spiffeId).where("not_after", ">", t).orderBy("issued_at").execute();
    return {
      user,
      certificates: certificates.map((c) => ({ serial: c.serial, issuedAt: new Date(c.issued_at).toISOString(), expiresAt: new Date(c.not_after).toISOString(), locked: ctx.locks.lockFor({ spiffeId: user.spiffeId, serialHex: c.serial }) !== undefined })),
    };
  });

  app.patch("/v1/users/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const body = parseRequest(UpdateUserBody, request.body);
    const before = await users.describe(name);
    const { user, secrets } = await users.update(name, body);
    const locks = body.disabled === true && !before.disabled ? await lockLiveCertificates(ctx, user.spiffeId, "user disabled", caller.spiffeId) : [];
    await ctx.audit.append({
      type: "user.update",
      code: "OK",
      actor: { kind: "admin", spiffeId: caller.spiffeId },
      target: { user: user.name, spiffeId: user.spiffeId },
      outcome: { status: "ok" },
      details: {
        ...(body.roles ? { roles: user.roles, previousRoles: before.roles } : {}),
        ...(body.labels ? { labels: user.labels } : {}),
        ...(body.disabled !== undefined ? { disabled: user.disabled } : {}),
        ...(body.resetPassword !== undefined ? { passwordReset: true } : {}),
        ...(body.resetTotp ? { totpReset: true } : {}),
        ...(locks.length ? { lockedCertificates: locks.map((l) => l.target.value) } : {}),
      },
    });
    return { user, ...secrets, locks };
  });

  app.delete("/v1/users/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const user = await users.describe(name);
    const locks = await lockLiveCertificates(ctx, user.spiffeId, "user removed", caller.spiffeId);
    await users.remove(name);
    await ctx.audit.append({ type: "user.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { user: name, spiffeId: user.spiffeId }, outcome: { status: "ok" }, details: { lockedCertificates: locks.map((l) => l.target.value) } });
    return { user, locks };
  });

  app.post("/v1/login", async (request) => {
    const body = parseRequest(LoginBody, request.body);
    return login.loginWithPassword({ ...body, address: request.ip });
  });

  app.get("/v1/users/me", async (request) => {
    const caller = await requireUser(ctx, request, "user.whoami");
    const user = await users.describe(caller.user);
    return { user, spiffeId: caller.spiffeId, serial: caller.serialHex, expiresAt: caller.notAfter.toISOString() };
  });

  // Logging out locks the certificate, so a copy left on disk or in a backup dies with it.
  app.post("/v1/logout", async (request) => {
    const caller = await requireUser(ctx, request, "user.logout");
    const lock = await ctx.locks.add({ kind: "serial", value: caller.serialHex, reason: "logged out", createdBy: caller.spiffeId, ttlMs: Math.max(caller.notAfter.getTime() - ctx.now(), 0) + 60_000 });
    await ctx.audit.append({ type: "user.logout", code: "OK", actor: { kind: "user", user: caller.user, spiffeId: caller.spiffeId, address: request.ip }, target: { serial: caller.serialHex }, outcome: { status: "ok" }, details: { lockId: lock.id } });
    return { serial: caller.serialHex, lock };
  });

  return sso;
}

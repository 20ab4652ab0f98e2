import { scryptSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generatePassword, hashPassword, parsePasswordHash, verifyPassword } from "./password.js";

describe("password hashes (scrypt)", () => {
  it("reproduces the RFC 7914 §12 scrypt test vector through node's scrypt (the primitive we rely on)", () => {
    const key = scryptSync("password", "NaCl", 64, { N: 1024, r: 8, p: 16 });
    expect(key.toString("hex")).toBe(
      "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
    );
  });

  it("stores the cost parameters and a per-user salt; verifies the right password only", async () => {
    const a = await hashPassword("correct horse battery staple");
    const b = await hashPassword("correct horse battery staple");
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/);
    expect(a).not.toBe(b);
    expect(parsePasswordHash(a).salt.length).toBe(16);
    expect(await verifyPassword("correct horse battery staple", a)).toBe(true);
    expect(await verifyPassword("correct horse battery stapl", a)).toBe(false);
    expect(await verifyPassword("", a)).toBe(false);
  });

  it("verifies hashes written with other (in-range) costs, refuses out-of-range or malformed ones", async () => {
    const cheap = await hashPassword("another password!", { ln: 10, r: 8, p: 1 });
    expect(await verifyPassword("another password!", cheap)).toBe(true);
    await expect(verifyPassword("x", cheap.replace("ln=10", "ln=30"))).rejects.toThrow(/out-of-range/);
    await expect(verifyPassword("x", "plain-text")).rejects.toThrow(/format/);
  });

  it("normalizes Unicode so the same password typed on two keyboards verifies", async () => {
    const hash = await hashPassword("caf\u00e9 au lait 123", { ln: 10, r: 8, p: 1 });
    expect(await verifyPassword("cafe\u0301 au lait 123", hash)).toBe(true);
  });

  it("generates 20-character passwords from the unambiguous alphabet", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const p = generatePassword();
      expect(p).toMatch(/^[A-HJ-NP-Za-km-z2-9]{20}$/);
      seen.add(p);
    }
    expect(seen.size).toBe(50);
  });
});

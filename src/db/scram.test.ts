import { createHash } from "node:crypto";
import { describe, expect, test } from "vitest";
import { ScramClient, md5Password } from "./scram.js";

describe("SCRAM-SHA-256 client", () => {
  // RFC 7677 section 3.
  const serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

  test("the RFC 7677 exchange", () => {
    const client = new ScramClient("pencil", "user", "rOprNGfwEbeRWgbNEkqO");
    expect(client.clientFirstMessage()).toBe("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    expect(client.clientFinalMessage(serverFirst)).toBe("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    expect(() => client.verifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).not.toThrow();
  });

  test("a server that does not know the password is not believed", () => {
    const client = new ScramClient("pencil", "user", "rOprNGfwEbeRWgbNEkqO");
    client.clientFirstMessage();
    client.clientFinalMessage(serverFirst);
    expect(() => client.verifyServerFinal("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).toThrow(/signature does not match/);
    expect(() => client.verifyServerFinal("e=invalid-proof")).toThrow(/server error/);
  });

  test("a server nonce that does not extend the client's is refused", () => {
    const client = new ScramClient("pencil", "user", "rOprNGfwEbeRWgbNEkqO");
    client.clientFirstMessage();
    expect(() => client.clientFinalMessage("r=somethingelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")).toThrow(/nonce/);
    expect(() => client.clientFinalMessage("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999")).toThrow(/iteration/);
  });
});

test("md5 passwords as PostgreSQL computes them", () => {
  const salt = Buffer.from([1, 2, 3, 4]);
  const inner = createHash("md5").update("secretalice").digest("hex");
  expect(md5Password("alice", "secret", salt)).toBe(`md5${createHash("md5").update(Buffer.concat([Buffer.from(inner), salt])).digest("hex")}`);
});

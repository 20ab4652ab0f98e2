import { MandateError } from "../errors/index.js";
import { base32Decode, base32Encode } from "./base32.js";
import { TOTP_DIGITS, TOTP_PERIOD_S } from "./totp.js";

/**
 * The `otpauth://totp/...` enrolment URI (the Key URI Format authenticator apps scan as
 * a QR code). Mandate writes only the parameters it verifies with: SHA1, 6 digits, 30 s.
 */
export interface OtpauthKey {
  issuer: string;
  account: string;
  secret: Buffer;
  algorithm: "SHA1" | "SHA256" | "SHA512";
  digits: number;
  period: number;
}

export function buildOtpauthUri(issuer: string, account: string, secret: Uint8Array): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  const query = new URLSearchParams({ secret: base32Encode(secret), issuer, algorithm: "SHA1", digits: String(TOTP_DIGITS), period: String(TOTP_PERIOD_S) });
  // URLSearchParams writes spaces as '+', which some apps show literally; %20 is read by all.
  return `otpauth://totp/${label}?${query.toString().replace(/\+/g, "%20")}`;
}

function invalid(reason: string): MandateError {
  return new MandateError("INVALID_ARGUMENT", `invalid otpauth URI: ${reason}`);
}

export function parseOtpauthUri(uri: string): OtpauthKey {
  if (uri.length > 4096) throw invalid("too long");
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw invalid("not a URI");
  }
  if (url.protocol !== "otpauth:") throw invalid("scheme must be otpauth");
  if (url.host !== "totp") throw invalid("only totp keys are supported");
  let label: string;
  try {
    label = decodeURIComponent(url.pathname.replace(/^\//, "").replace(/\+/g, "%20"));
  } catch {
    throw invalid("label is not valid percent-encoding");
  }
  const colon = label.indexOf(":");
  const labelIssuer = colon >= 0 ? label.slice(0, colon) : undefined;
  const account = colon >= 0 ? label.slice(colon + 1) : label;
  const params = url.searchParams;
  const secretText = params.get("secret");
  if (!secretText) throw invalid("secret is missing");
  const secret = base32Decode(secretText);
  if (secret.length === 0) throw invalid("secret is empty");
  const issuer = params.get("issuer") ?? labelIssuer ?? "";
  if (labelIssuer !== undefined && params.has("issuer") && labelIssuer !== issuer) throw invalid("the label's issuer and the issuer parameter differ");
  const algorithm = (params.get("algorithm") ?? "SHA1").toUpperCase();
  if (algorithm !== "SHA1" && algorithm !== "SHA256" && algorithm !== "SHA512") throw invalid(`unsupported algorithm ${algorithm}`);
  const digits = Number(params.get("digits") ?? "6");
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) throw invalid("digits must be 6 to 8");
  const period = Number(params.get("period") ?? "30");
  if (!Number.isInteger(period) || period < 1 || period > 300) throw invalid("period must be 1 to 300 seconds");
  return { issuer, account, secret, algorithm, digits, period };
}

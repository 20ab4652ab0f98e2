import { isIPv4 } from "node:net";
import type { DerReader } from "./der/reader.js";

export interface GeneralNames {
  uris: string[];
  dnsNames: string[];
  ips: string[];
  emails: string[];
  /** Name forms we do not interpret (otherName, directoryName, …), by tag. */
  others: number[];
}

/** Reads a GeneralNames SEQUENCE (RFC 5280 §4.2.1.6) from an extension value, counting every entry. */
export function readGeneralNames(reader: DerReader): GeneralNames {
  const names: GeneralNames = { uris: [], dnsNames: [], ips: [], emails: [], others: [] };
  const seq = reader.enter(0x30);
  while (!seq.done) {
    const element = seq.read();
    switch (element.tag) {
      case 0x81:
        names.emails.push(element.value.toString("latin1"));
        break;
      case 0x82:
        names.dnsNames.push(element.value.toString("latin1"));
        break;
      case 0x86:
        names.uris.push(element.value.toString("latin1"));
        break;
      case 0x87:
        names.ips.push(formatIp(element.value));
        break;
      default:
        names.others.push(element.tag);
    }
  }
  reader.end();
  return names;
}

function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) {
    const text = [...bytes].join(".");
    return isIPv4(text) ? text : `invalid:${bytes.toString("hex")}`;
  }
  if (bytes.length === 16) return (bytes.toString("hex").match(/.{4}/g) ?? []).join(":");
  return `invalid:${bytes.toString("hex")}`;
}

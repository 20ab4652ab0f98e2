import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../../errors/index.js";
import { WIRES } from "./index.js";

describe("wire formats under arbitrary bodies", () => {
  it("inspect either describes the request or refuses it with a MandateError, never anything else", () => {
    const message = fc.record({ role: fc.oneof(fc.constantFrom("user", "assistant", "tool", "system"), fc.anything()), content: fc.oneof(fc.string(), fc.array(fc.record({ type: fc.constantFrom("text", "tool_result", "document"), text: fc.anything(), content: fc.anything() })), fc.anything()) }, { requiredKeys: [] });
    const body = fc.record({ model: fc.oneof(fc.string(), fc.anything()), messages: fc.oneof(fc.array(message), fc.anything()), input: fc.anything(), max_tokens: fc.anything(), stream: fc.anything(), system: fc.anything(), instructions: fc.anything() }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(WIRES)), body, (wire, b) => {
        try {
          const view = wire.inspect(b as Record<string, unknown>);
          expect(typeof view.model).toBe("string");
          for (const t of view.texts) expect(typeof t.text).toBe("string");
        } catch (error) {
          expect(isMandateError(error)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("stream observers survive any event data", () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(WIRES)), fc.array(fc.tuple(fc.option(fc.string(), { nil: undefined }), fc.oneof(fc.string(), fc.json())), { maxLength: 20 }), (wire, events) => {
        const observer = wire.observer(true);
        for (const [event, data] of events) observer.read(event, data, Buffer.from(`data: ${data}\n\n`));
        observer.usage();
        observer.toolCalls();
      }),
    );
  });
});

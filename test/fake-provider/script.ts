/**
 * What the fake provider does with the next request. Steps are consumed one per request
 * in order; when the script is empty the default (a normal answer) applies.
 */
export interface FakeStep {
  /** answer with this HTTP status and the provider's own error body for it */
  status?: number;
  /** seconds, sent as Retry-After with an error status */
  retryAfter?: number;
  /** wait this long before sending the response headers */
  delayMs?: number;
  /** hold the answer until this settles (lets a test see every request in flight at once) */
  until?: Promise<unknown>;
  /** never answer (the caller's timeout or abort ends it) */
  hang?: boolean;
  /** streaming: send this many events, then stop sending without closing */
  stallAfterEvents?: number;
  /** streaming: send this many events, then destroy the connection */
  dropAfterEvents?: number;
  /** streaming: pause between events */
  eventDelayMs?: number;
  /** the assistant's text (default: "Echo: <last user text>") */
  reply?: string;
  /** answer with a tool call instead of text (default when the request offers tools and the last turn is the user's) */
  toolCall?: { name: string; arguments: Record<string, unknown> } | false;
  /** an OpenAI-compatible server that reports no usage at all */
  noUsage?: boolean;
  cachedTokens?: number;
  reasoningTokens?: number;
}

export class FakeScript {
  private steps: FakeStep[] = [];
  /** applied to every request after the scripted steps run out */
  fallback: FakeStep = {};

  push(...steps: FakeStep[]): void {
    this.steps.push(...steps);
  }

  next(): FakeStep {
    return this.steps.shift() ?? this.fallback;
  }

  clear(): void {
    this.steps = [];
    this.fallback = {};
  }

  get pending(): number {
    return this.steps.length;
  }
}

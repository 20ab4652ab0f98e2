/** An error the OAuth endpoints answer in the protocol's own shape (RFC 6749 §5.2, RFC 7591 §3.2.2). */
export class OAuthProtocolError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description);
    this.name = "OAuthProtocolError";
  }

  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

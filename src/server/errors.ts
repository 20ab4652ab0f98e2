import type { FastifyError, FastifyInstance } from "fastify";
import { MandateError, isMandateError } from "../errors/index.js";

/** Maps framework errors onto Mandate's codes so every client sees one error shape. */
export function toMandateError(error: unknown): MandateError {
  if (isMandateError(error)) return error;
  const fastifyError = error as FastifyError;
  switch (fastifyError.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new MandateError("BODY_TOO_LARGE", "request body is larger than the limit");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new MandateError("MALFORMED_REQUEST", "request body is not valid JSON");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new MandateError("MALFORMED_REQUEST", "unsupported Content-Type; send application/json");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new MandateError("MALFORMED_REQUEST", "Content-Length does not match the body");
    default:
      if (fastifyError.statusCode && fastifyError.statusCode < 500) return new MandateError("MALFORMED_REQUEST", fastifyError.message);
      return new MandateError("INTERNAL", "internal error", { cause: error });
  }
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const mandateError = toMandateError(error);
    if (mandateError.code === "INTERNAL") request.log.error({ err: error }, "unhandled error");
    else request.log.info({ code: mandateError.code }, mandateError.message);
    void reply.status(mandateError.httpStatus).send({ error: mandateError.toJSON() });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: "NOT_FOUND", message: `no route ${request.method} ${request.url.split("?")[0]}` } });
  });
}

/**
 * Runs `onStop` on the first SIGINT or SIGTERM; the returned function removes both
 * handlers. Commands run many times in one process (tests, embedders) must leave none behind.
 */
export function onStopSignal(onStop: () => void): () => void {
  const handler = () => {
    remove();
    onStop();
  };
  const remove = () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return remove;
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => void onStopSignal(resolve));
}

import { spawn } from "node:child_process";

export type BrowserOpener = (url: string) => Promise<void>;

/** $BROWSER if set (the usual convention), else the platform's opener; failures are not fatal, the URL is printed too. */
const systemOpener: BrowserOpener = async (url) => {
  const command = process.env.BROWSER ?? (process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open");
  await new Promise<void>((resolve) => {
    try {
      const child = spawn(command, [url], { detached: true, stdio: "ignore" });
      child.once("error", () => resolve());
      child.once("spawn", () => {
        child.unref();
        resolve();
      });
    } catch {
      resolve();
    }
  });
};

let current: BrowserOpener = systemOpener;

export function openInBrowser(url: string): Promise<void> {
  return current(url);
}

/** In-process callers (tests) play the browser; returns the restorer. */
export function useBrowserOpener(opener: BrowserOpener): () => void {
  const previous = current;
  current = opener;
  return () => {
    current = previous;
  };
}

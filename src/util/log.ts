/** Where xfer's messages go: warnings to stderr, silenced by `setQuiet(true)` (the CLI's --quiet). */
let quiet = false;
const warnedOnce = new Set<string>();

export function setQuiet(value: boolean): void {
  quiet = value;
}

export function isQuiet(): boolean {
  return quiet;
}

export function warn(message: string): void {
  if (!quiet) process.stderr.write(`xfer: warning: ${message}\n`);
}

/** A warning printed once per process for a given key (e.g. "running on the cpu backend"). */
export function warnOnce(key: string, message: string): void {
  if (warnedOnce.has(key)) return;
  warnedOnce.add(key);
  warn(message);
}

export function info(message: string): void {
  if (!quiet) process.stderr.write(`${message}\n`);
}

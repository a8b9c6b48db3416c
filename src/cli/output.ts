/** How commands print: results to stdout (JSON lines with --json), messages to stderr. */
import { backendName, initBackend } from '../engine/backend.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Initializes the backend and says once, on stderr, which one runs. */
export async function announceBackend(quiet: boolean): Promise<string> {
  await initBackend();
  const name = backendName();
  if (!quiet) process.stderr.write(`xfer: running on the tfjs '${name}' backend\n`);
  return name;
}

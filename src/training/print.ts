/**
 * Where the training loop's own messages go: stdout, as Keras prints its progress bar and its
 * callbacks' notices, and nothing under `setQuiet(true)`.
 */
import { isQuiet } from '../util/log.js';

export function printLine(message: string, stream: NodeJS.WritableStream = process.stdout): void {
  if (!isQuiet()) stream.write(`${message}\n`);
}

/**
 * The typed error family of xfer. Every user mistake surfaces as an `XferError` whose message says
 * what was wrong, what was received and what to do; the CLI maps `code` to an exit status and prints
 * the message alone (the stack only under `--debug`).
 */

export type XferErrorCode =
  | 'INVALID_ARGUMENT' // a value of the wrong type or range
  | 'UNKNOWN_NAME' // a name not in a registry (backbone, loss, layer...)
  | 'NOT_FOUND' // a file or folder that does not exist
  | 'NO_DATA' // a data folder with nothing usable in it
  | 'CORRUPT_FILE' // a file that exists but cannot be read as what it claims to be
  | 'SHAPE_MISMATCH' // tensors or inputs of the wrong shape
  | 'WEIGHTS_MISMATCH' // a weight file that does not fit the architecture
  | 'DOWNLOAD_FAILED' // network errors, HTTP errors, truncated bodies
  | 'HASH_MISMATCH' // a downloaded or cached file whose hash is not the recorded one
  | 'BACKEND_UNAVAILABLE' // a requested tfjs backend that cannot be loaded
  | 'UNSUPPORTED' // a feature or layer that xfer does not handle
  | 'INTERRUPTED'; // training stopped by a signal

export class XferError extends Error {
  override readonly name = 'XferError';
  readonly code: XferErrorCode;
  /** Structured facts about the failure (file, expected, received...), for programs. */
  readonly details: Record<string, unknown>;

  constructor(
    code: XferErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

export function isXferError(error: unknown): error is XferError {
  return error instanceof XferError;
}

/** Shows a received value the way the messages quote it: strings quoted, objects as JSON. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map(describeValue).join(', ')}]`;
  if (typeof value === 'object') {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/**
 * The one message template for bad arguments at the public boundary, after sharp's:
 * "Expected positive integer for batchSize but received 1.5 of type number".
 */
export function invalidParameterError(name: string, expected: string, actual: unknown): XferError {
  const type = actual === null ? 'null' : Array.isArray(actual) ? 'array' : typeof actual;
  return new XferError(
    'INVALID_ARGUMENT',
    `Expected ${expected} for ${name} but received ${describeValue(actual)} of type ${type}`,
    { parameter: name, expected, actual },
  );
}

/** Levenshtein distance, for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The known name closest to `name`, if it is close enough to be a likely typo. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(lower.length / 3)) ? best : undefined;
}

/** "unknown backbone 'vgg17'; did you mean 'vgg16'? Known: vgg16, vgg19, ..." */
export function unknownNameError(kind: string, name: string, known: readonly string[]): XferError {
  const suggestion = closestName(name, known);
  const hint = suggestion ? `; did you mean '${suggestion}'?` : '.';
  return new XferError(
    'UNKNOWN_NAME',
    `unknown ${kind} ${describeValue(name)}${hint} Known: ${known.join(', ')}`,
    { kind, name, known, suggestion },
  );
}

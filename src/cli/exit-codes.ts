/** Exit statuses of the `xfer` command, one per family of error codes. */
import type { XferErrorCode } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;
export const EXIT_USAGE = 2;

const EXIT_BY_CODE: Record<XferErrorCode, number> = {
  INVALID_ARGUMENT: 2,
  UNKNOWN_NAME: 2,
  SHAPE_MISMATCH: 2,
  NOT_FOUND: 3,
  NO_DATA: 3,
  CORRUPT_FILE: 4,
  WEIGHTS_MISMATCH: 4,
  DOWNLOAD_FAILED: 5,
  HASH_MISMATCH: 5,
  BACKEND_UNAVAILABLE: 6,
  UNSUPPORTED: 6,
  INTERRUPTED: 130,
};

export function exitCodeFor(code: XferErrorCode): number {
  return EXIT_BY_CODE[code] ?? EXIT_INTERNAL;
}

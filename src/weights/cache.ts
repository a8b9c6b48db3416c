/**
 * Where downloads are kept, and the file hashes that vouch for them (Keras's `get_file` cache, with
 * `XFER_HOME` in the role of `KERAS_HOME`).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { invalidParameterError } from '../errors.js';

export type HashAlgorithm = 'md5' | 'sha256';

/**
 * The cache folder: `$XFER_HOME` when set, else `~/.cache/xfer`; with `subdir`, that folder inside
 * it (downloads of weight files go to `models`).
 * @example
 * cacheDir();         // '/home/me/.cache/xfer'
 * cacheDir('models'); // '/home/me/.cache/xfer/models'
 */
export function cacheDir(subdir?: string): string {
  const home = process.env.XFER_HOME;
  const root =
    home !== undefined && home !== ''
      ? path.resolve(home)
      : path.join(os.homedir(), '.cache', 'xfer');
  return subdir === undefined ? root : path.join(root, subdir);
}

/**
 * Keras's rule for `hash_algorithm='auto'`: 64 hex digits are sha256, 32 are md5. A hash of any
 * other form is a mistake worth saying so, rather than a file that never matches.
 */
export function resolveHashAlgorithm(
  fileHash: string,
  algorithm: 'md5' | 'sha256' | 'auto',
): HashAlgorithm {
  if (!/^[0-9a-fA-F]+$/.test(fileHash)) {
    throw invalidParameterError(
      'fileHash',
      'a hex md5 (32 digits) or sha256 (64 digits) hash',
      fileHash,
    );
  }
  const resolved = algorithm === 'auto' ? (fileHash.length === 64 ? 'sha256' : 'md5') : algorithm;
  const digits = resolved === 'sha256' ? 64 : 32;
  if (fileHash.length !== digits) {
    throw invalidParameterError('fileHash', `a ${resolved} hash of ${digits} hex digits`, fileHash);
  }
  return resolved;
}

/** The hex digest of a file, streamed. */
export async function hashFile(file: string, algorithm: HashAlgorithm): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Keras's `get_file`: a file from a URL, kept in the cache and vouched for by its hash.
 *
 * Durability and safety, each with a test in test/weights-download*.test.ts:
 * - the body streams into `<file>.part` in the cache folder, hashed as it goes, then is fsynced,
 *   checked and renamed into place (and the folder fsynced), so a partial download is never
 *   taken for the file;
 * - one process at a time downloads a given file: `<file>.lock` (O_EXCL, with stale-lock
 *   detection by pid and age); another process waits, then finds the file in the cache;
 * - a broken transfer keeps `<file>.part` and its validator (ETag / Last-Modified, size) in
 *   `<file>.part.json` when the server gave one, and the next call resumes with a Range request
 *   (If-Range); a server that answers 200 instead of 206 starts the file over, and the hash is
 *   checked over the whole file;
 * - connect and idle timeouts, a size cap (Content-Length refused before writing, a stream
 *   aborted past it), at most 5 redirects and never from https down to http;
 * - a full disk (ENOSPC) is one clear error, and the partial file is deleted to give the space
 *   back.
 * Node's own http/https, no extra dependency.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { invalidParameterError, XferError } from '../errors.js';
import { fsyncDirectory, pathExists, withFileLock, writeFileAtomic } from '../util/fs.js';
import { info, warn } from '../util/log.js';
import { createProgress, type Progress } from '../util/progress.js';
import { checkBoolean, checkOneOf, checkPositiveInteger } from '../util/validate.js';
import { cacheDir, type HashAlgorithm, hashFile, resolveHashAlgorithm } from './cache.js';

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** The defaults of the limits, also listed in SECURITY.md. */
export const DOWNLOAD_DEFAULTS = {
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  /** 4 GiB: the largest built-in download (the cats-vs-dogs archive) is 825 MB. */
  maxBytes: 4 * 1024 ** 3,
  maxRedirects: 5,
  lockStaleMs: 120_000,
} as const;

export interface GetFileOptions {
  /** Expected md5 or sha256 (hex) of the file. A cached file that does not match is downloaded again. Default: no check. */
  fileHash?: string;
  /** `'auto'` picks sha256 for 64 hex digits and md5 for 32, as Keras does. Default `'auto'`. */
  hashAlgorithm?: 'md5' | 'sha256' | 'auto';
  /** Folder inside the cache. Default `'models'`. */
  cacheSubdir?: string;
  /** Cache root. Default `cacheDir()`: `$XFER_HOME`, else `~/.cache/xfer`. */
  cacheDir?: string;
  /** Show a progress bar when the size is known. Default `true` (nothing is drawn under `setQuiet(true)`). */
  progress?: boolean;
  /** Milliseconds to wait for the connection. Default 30000. */
  connectTimeoutMs?: number;
  /** Milliseconds without a byte before giving up. Default 60000. */
  idleTimeoutMs?: number;
  /** Largest file accepted, in bytes: a larger Content-Length is refused, a longer body aborted. Default 4 GiB. */
  maxBytes?: number;
  /** Redirects followed before giving up. Default 5. */
  maxRedirects?: number;
  /** Continue a broken download with a Range request where the server allows it. Default true. */
  resume?: boolean;
}

interface Target {
  readonly url: URL;
  readonly file: string;
  readonly hash: { readonly expected: string; readonly algorithm: HashAlgorithm } | undefined;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxBytes: number;
  readonly maxRedirects: number;
  readonly resume: boolean;
  readonly progress: boolean;
  readonly label: string;
}

/** What `<file>.part.json` records, so that a later run can ask for the rest of the same file. */
interface PartInfo {
  url: string;
  etag?: string;
  lastModified?: string;
  /** The whole file's size, when the server said it. */
  total?: number;
}

/**
 * Where the bytes are written; tests replace it to simulate a full disk (ENOSPC) without root.
 * @internal
 */
export const downloadSeams = {
  write: (handle: fsp.FileHandle, chunk: Buffer, position: number): Promise<unknown> =>
    handle.write(chunk, 0, chunk.length, position),
};

function byHand(target: Target): string {
  const hash = target.hash ? ` (its ${target.hash.algorithm} must be ${target.hash.expected})` : '';
  return `Download it by hand and put it at ${target.file}${hash}.`;
}

function downloadFailed(
  target: Target,
  url: URL,
  reason: string,
  cause?: unknown,
  extra: Record<string, unknown> = {},
): XferError {
  return new XferError(
    'DOWNLOAD_FAILED',
    `could not download ${url.href}: ${reason}. ${byHand(target)}`,
    { url: url.href, origin: target.url.href, path: target.file, ...extra },
    cause === undefined ? undefined : { cause },
  );
}

function networkReason(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'the connection was refused (is the address right and the server up?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name could not be resolved (no network?)';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
      return 'the network is unreachable (no network?)';
    default:
      return error.message;
  }
}

/**
 * The redirect rule: why `to` may not be followed from `from`, or undefined when it may. Only
 * http(s), and never from https down to plain http (a downgrade would let anyone on the path
 * swap the file when no hash is recorded).
 */
export function redirectProblem(from: URL, to: URL): string | undefined {
  if (to.protocol !== 'http:' && to.protocol !== 'https:') {
    return `redirected to ${to.href}, which is not http(s)`;
  }
  if (from.protocol === 'https:' && to.protocol === 'http:') {
    return `redirected from https to plain http (${to.href}); refusing the downgrade`;
  }
  return undefined;
}

/** One GET; resolves once the response headers are in. */
function get(
  url: URL,
  target: Target,
  headers: Record<string, string>,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    // agent: false gives each request a fresh socket, so 'connect' always fires for the timer.
    const request = client.get(url, {
      agent: false,
      headers: { 'user-agent': 'xfer', accept: '*/*', ...headers },
    });
    let response: http.IncomingMessage | undefined;
    const connectTimer = setTimeout(() => {
      request.destroy(
        Object.assign(new Error(`no connection within ${target.connectTimeoutMs} ms`), {
          code: 'XFER_CONNECT_TIMEOUT',
        }),
      );
    }, target.connectTimeoutMs);
    request.on('socket', (socket) => {
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () =>
        clearTimeout(connectTimer),
      );
    });
    request.setTimeout(target.idleTimeoutMs, () => {
      const error = Object.assign(new Error(`no data for ${target.idleTimeoutMs} ms`), {
        code: 'XFER_IDLE_TIMEOUT',
      });
      // Once the body is flowing, the error must reach its reader, not only the request.
      if (response) response.destroy(error);
      else request.destroy(error);
    });
    request.on('response', (received) => {
      clearTimeout(connectTimer);
      response = received;
      resolve(received);
    });
    request.on('error', (error) => {
      clearTimeout(connectTimer);
      reject(error);
    });
    request.on('close', () => clearTimeout(connectTimer));
  });
}

/**
 * Follows redirects (at most `maxRedirects`, by `redirectProblem`'s rule) to a 2xx response, or a
 * 416 when a Range was asked for (the part on disk is then of no use).
 */
async function open(
  target: Target,
  headers: Record<string, string>,
): Promise<{ response: http.IncomingMessage; url: URL }> {
  let url = target.url;
  for (let redirects = 0; ; redirects++) {
    let response: http.IncomingMessage;
    try {
      response = await get(url, target, headers);
    } catch (error) {
      throw downloadFailed(target, url, networkReason(error as NodeJS.ErrnoException), error);
    }
    const status = response.statusCode ?? 0;
    if (REDIRECT_STATUSES.has(status)) {
      response.resume();
      const location = response.headers.location;
      if (!location)
        throw downloadFailed(target, url, `HTTP ${status} redirect without a Location header`);
      if (redirects >= target.maxRedirects)
        throw downloadFailed(target, url, `more than ${target.maxRedirects} redirects`);
      const next = new URL(location, url);
      const problem = redirectProblem(url, next);
      if (problem) throw downloadFailed(target, url, problem);
      url = next;
      continue;
    }
    if (status === 416 && headers.range) return { response, url };
    if (status < 200 || status >= 300) {
      response.resume();
      throw downloadFailed(
        target,
        url,
        `the server answered HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ''}`,
      );
    }
    return { response, url };
  }
}

/** Progress in kB below a megabyte, in MB (one decimal) above. */
function sizeUnit(total: number): { unit: string; scale: (bytes: number) => number } {
  if (total < 1e6) return { unit: 'kB', scale: (bytes) => Math.round(bytes / 1e3) };
  return { unit: 'MB', scale: (bytes) => Math.round(bytes / 1e5) / 10 };
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The validator a later Range request can send as If-Range: a strong ETag, else the date. */
function partInfoFrom(response: http.IncomingMessage, url: URL, total: number | undefined) {
  const etag = response.headers.etag;
  const lastModified = response.headers['last-modified'];
  const info: PartInfo = { url: url.href };
  if (etag && !etag.startsWith('W/')) info.etag = etag;
  if (lastModified) info.lastModified = lastModified;
  if (total !== undefined) info.total = total;
  const resumable =
    (info.etag !== undefined || info.lastModified !== undefined) &&
    response.headers['accept-ranges'] !== 'none';
  return resumable ? info : undefined;
}

function partPaths(target: Target): { part: string; info: string; lock: string } {
  return {
    part: `${target.file}.part`,
    info: `${target.file}.part.json`,
    lock: `${target.file}.lock`,
  };
}

/** A part left by an earlier run of the same URL, with what is needed to ask for the rest. */
async function resumablePart(
  target: Target,
): Promise<{ info: PartInfo; size: number } | undefined> {
  const paths = partPaths(target);
  let info: PartInfo;
  let size: number;
  try {
    info = JSON.parse(await fsp.readFile(paths.info, 'utf8')) as PartInfo;
    size = (await fsp.stat(paths.part)).size;
  } catch {
    return undefined;
  }
  const valid =
    info !== null &&
    typeof info === 'object' &&
    info.url === target.url.href &&
    (typeof info.etag === 'string' || typeof info.lastModified === 'string') &&
    size > 0 &&
    (info.total === undefined || size <= info.total);
  return valid ? { info, size } : undefined;
}

async function discardPart(target: Target): Promise<void> {
  const paths = partPaths(target);
  await fsp.rm(paths.part, { force: true });
  await fsp.rm(paths.info, { force: true });
}

/** Content-Range of a 206: `bytes START-END/TOTAL`. */
function contentRange(
  header: string | undefined,
): { start: number; total: number | undefined } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header ?? '');
  if (!match) return undefined;
  return { start: Number(match[1]), total: match[3] === '*' ? undefined : Number(match[3]) };
}

/** Hashes the first `length` bytes of `file`, to continue hashing a resumed part. */
async function hashPrefix(hash: Hash, file: string, length: number): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(file, { start: 0, end: length - 1 })) {
    hash.update(chunk as Buffer);
  }
}

const QUEUE_HIGH = 8 * 1024 * 1024;

/**
 * The response body as chunks, read from the moment the headers are in: while the part file is
 * being set up (an fsync can take a while) bytes keep arriving, and those that arrived before a
 * cut are still handed out before the error, so a resume starts after every byte received. The
 * socket is paused while more than 8 MB wait.
 */
function bodyOf(response: http.IncomingMessage): AsyncIterable<Buffer> {
  const queue: Buffer[] = [];
  let queued = 0;
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  response.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued > QUEUE_HIGH) response.pause();
    notify();
  });
  response.on('end', () => {
    ended = true;
    notify();
  });
  response.on('error', (error) => {
    failure ??= error;
    notify();
  });
  response.on('close', () => {
    if (!ended && failure === undefined) {
      failure = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    }
    notify();
  });
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) {
          queued -= chunk.length;
          if (queued <= QUEUE_HIGH / 2 && response.isPaused()) response.resume();
          yield chunk;
          continue;
        }
        if (ended) return;
        if (failure !== undefined) throw failure;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}

/** Why a transfer stopped, for the caller to decide what to keep. */
class TransferStop extends Error {
  constructor(
    readonly kind: 'network' | 'disk-full' | 'too-large' | 'truncated',
    readonly error: XferError,
  ) {
    super(error.message);
  }
}

/**
 * Streams the body into the part file from `offset`, hashing as it goes; checks the length
 * against the expected total and the size cap; fsyncs.
 */
async function receive(
  target: Target,
  response: http.IncomingMessage,
  body: AsyncIterable<Buffer>,
  url: URL,
  part: string,
  offset: number,
  total: number | undefined,
  hash: Hash | undefined,
): Promise<void> {
  let progress: Progress | undefined;
  const { unit, scale } = sizeUnit(total ?? 0);
  if (target.progress && total !== undefined) {
    progress = createProgress({ total: scale(total), label: target.label, unit });
    progress.update(scale(offset));
  }
  let received = offset;
  let shown = scale(offset);
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(part, offset > 0 ? 'r+' : 'w');
  } catch (error) {
    progress?.stop();
    response.destroy();
    throw diskError(target, url, part, error, offset, total);
  }
  try {
    try {
      for await (const chunk of body) {
        if (received + chunk.length > target.maxBytes) {
          response.destroy();
          throw new TransferStop(
            'too-large',
            downloadFailed(
              target,
              url,
              `the file is larger than the size cap of ${target.maxBytes} bytes (maxBytes); the transfer was stopped`,
              undefined,
              { maxBytes: target.maxBytes },
            ),
          );
        }
        try {
          await downloadSeams.write(handle, chunk, received);
        } catch (error) {
          response.destroy();
          throw diskError(target, url, part, error, received, total);
        }
        received += chunk.length;
        hash?.update(chunk);
        const value = scale(received);
        if (progress && value !== shown) {
          shown = value;
          progress.update(value);
        }
      }
    } catch (error) {
      if (error instanceof TransferStop) throw error;
      const sofar =
        total !== undefined ? `after ${received} of ${total} bytes` : `after ${received} bytes`;
      throw new TransferStop(
        'network',
        downloadFailed(
          target,
          url,
          `the transfer broke off ${sofar} (${networkReason(error as NodeJS.ErrnoException)})`,
          error,
          { received },
        ),
      );
    }
    if (total !== undefined && received !== total) {
      throw new TransferStop(
        'truncated',
        downloadFailed(
          target,
          url,
          `the body was truncated: ${received} of ${total} bytes arrived`,
          undefined,
          { received },
        ),
      );
    }
    try {
      await handle.sync();
    } catch (error) {
      throw diskError(target, url, part, error, received, total);
    }
  } finally {
    progress?.stop();
    await handle.close().catch(() => undefined);
  }
}

/** A write that failed: a full disk gets its own message, other errors say where. */
function diskError(
  target: Target,
  url: URL,
  part: string,
  error: unknown,
  written: number,
  total: number | undefined,
): TransferStop {
  const code = (error as NodeJS.ErrnoException).code;
  const dir = path.dirname(target.file);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    const need = total !== undefined ? ` (the file needs ${megabytes(total)})` : '';
    return new TransferStop(
      'disk-full',
      new XferError(
        'DOWNLOAD_FAILED',
        `the disk is full: no space left in ${dir} after writing ${megabytes(written)} of ${url.href}${need}. The partial file was deleted. Free some space there, or set XFER_HOME to a folder on a larger disk, and run again.`,
        { url: url.href, path: target.file, errno: code, written, total },
        { cause: error },
      ),
    );
  }
  return new TransferStop(
    'disk-full',
    new XferError(
      'DOWNLOAD_FAILED',
      `cannot write ${part} while downloading ${url.href}: ${(error as Error).message}. Check that ${dir} is writable, or set XFER_HOME to another folder.`,
      { url: url.href, path: target.file, errno: code },
      { cause: error },
    ),
  );
}

function hashMismatch(target: Target, actual: string): XferError {
  const hash = target.hash!;
  return new XferError(
    'HASH_MISMATCH',
    `the file downloaded from ${target.url.href} has ${hash.algorithm} ${actual}, but ${hash.expected} was expected, so it was deleted (a corrupt download, or the file at that URL changed). ${byHand(target)}`,
    {
      url: target.url.href,
      path: target.file,
      expected: hash.expected,
      received: actual,
      algorithm: hash.algorithm,
    },
  );
}

/**
 * One attempt: resumes the part when it can, else fetches from byte 0. Returns 'retry' when a
 * resumed file turned out wrong (its hash), so the caller starts over once.
 */
async function attempt(target: Target, allowResume: boolean): Promise<'done' | 'retry'> {
  const paths = partPaths(target);
  const previous = allowResume && target.resume ? await resumablePart(target) : undefined;
  const headers: Record<string, string> = {};
  if (previous) {
    headers.range = `bytes=${previous.size}-`;
    headers['if-range'] = previous.info.etag ?? previous.info.lastModified!;
  }
  const { response, url } = await open(target, headers);
  const status = response.statusCode ?? 0;
  const body = bodyOf(response);

  let offset = 0;
  let total: number | undefined;
  if (status === 416) {
    // The part is as long as the file or longer, or the file changed: it is no use.
    response.resume();
    await discardPart(target);
    return 'retry';
  }
  if (status === 206) {
    const range = contentRange(response.headers['content-range']);
    const consistent =
      previous !== undefined &&
      range !== undefined &&
      range.start === previous.size &&
      (previous.info.total === undefined || range.total === previous.info.total);
    if (!consistent) {
      response.destroy();
      await discardPart(target);
      if (previous === undefined) {
        throw downloadFailed(target, url, 'the server sent part of the file (HTTP 206) unasked');
      }
      info(`the server sent a range that does not continue ${paths.part}; downloading it again.`);
      return 'retry';
    }
    offset = previous.size;
    total = range.total;
    info(`resuming the download of ${path.basename(target.file)} at byte ${offset}.`);
  } else {
    // 200: no Range asked, or the server ignored it, or If-Range failed (the file changed).
    if (previous) {
      info(
        `the server sent the whole of ${url.href} again (no resume: it ignores ranges, or the file changed); starting over.`,
      );
    }
    const header = response.headers['content-length'];
    total = header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
  }

  if (total !== undefined && total > target.maxBytes) {
    response.destroy();
    await discardPart(target);
    throw downloadFailed(
      target,
      url,
      `the server announces ${total} bytes, more than the size cap of ${target.maxBytes} bytes (maxBytes); nothing was written`,
      undefined,
      { maxBytes: target.maxBytes, total },
    );
  }

  const partInfo = offset === 0 ? partInfoFrom(response, url, total) : previous?.info;
  if (offset === 0) {
    // The validator is written before the body, so that a process killed mid-body can resume.
    try {
      if (partInfo && target.resume) await writeFileAtomic(paths.info, JSON.stringify(partInfo));
      else await fsp.rm(paths.info, { force: true });
    } catch (error) {
      response.destroy();
      await discardPart(target);
      throw diskError(target, url, paths.info, error, 0, total).error;
    }
  }

  const hash = target.hash ? createHash(target.hash.algorithm) : undefined;
  if (hash && offset > 0) await hashPrefix(hash, paths.part, offset);
  try {
    await receive(target, response, body, url, paths.part, offset, total, hash);
  } catch (error) {
    const stop = error as TransferStop;
    const keep = stop.kind === 'network' && partInfo !== undefined && target.resume;
    if (keep) {
      throw new XferError(
        stop.error.code,
        `${stop.error.message} The part received is kept in ${paths.part}; run again to resume.`,
        stop.error.details,
        { cause: stop.error },
      );
    }
    await discardPart(target);
    throw stop instanceof TransferStop ? stop.error : error;
  }

  if (hash && target.hash) {
    const actual = hash.digest('hex');
    if (actual !== target.hash.expected) {
      await discardPart(target);
      if (offset > 0) {
        warn(
          `the resumed download of ${url.href} has ${target.hash.algorithm} ${actual}, not ${target.hash.expected}; downloading the whole file again.`,
        );
        return 'retry';
      }
      throw hashMismatch(target, actual);
    }
  }
  await fsp.rename(paths.part, target.file);
  await fsyncDirectory(path.dirname(target.file));
  await fsp.rm(paths.info, { force: true });
  return 'done';
}

/** The cached file when it is there and (with a hash) right; warns about a wrong one. */
async function cached(target: Target, quiet: boolean): Promise<boolean> {
  if (!(await pathExists(target.file))) return false;
  const stat = await fsp.stat(target.file);
  if (!stat.isFile()) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `the cache path ${target.file} exists but is not a file; remove it and try again.`,
      { path: target.file },
    );
  }
  if (!target.hash) return true;
  const actual = await hashFile(target.file, target.hash.algorithm);
  if (actual === target.hash.expected) return true;
  if (!quiet) {
    warn(
      `the cached file ${target.file} has ${target.hash.algorithm} ${actual}, not ${target.hash.expected} (incomplete or outdated); downloading it again from ${target.url.href}.`,
    );
  }
  return false;
}

function checkName(fname: unknown): string {
  if (
    typeof fname !== 'string' ||
    fname === '' ||
    fname === '.' ||
    fname === '..' ||
    /[\\/]/.test(fname)
  ) {
    throw invalidParameterError('fname', 'a plain file name (no folders)', fname);
  }
  return fname;
}

function checkOrigin(origin: unknown): URL {
  let url: URL | undefined;
  if (typeof origin === 'string') {
    try {
      url = new URL(origin);
    } catch {
      url = undefined;
    }
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw invalidParameterError('origin', 'an http:// or https:// URL', origin);
  }
  return url;
}

function checkNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidParameterError(name, 'non-negative integer', value);
  }
  return value;
}

/**
 * Returns the path of `fname` in the cache, downloading it from `origin` first unless a copy is
 * there (and matches `fileHash`, when given). Like Keras's `get_file`; a broken download is
 * resumed by the next call where the server allows it.
 * @example
 * const file = await getFile(
 *   'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
 *   'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5',
 *   { fileHash: '6d6bbae143d832006294945121d1f1fc', cacheSubdir: 'models' },
 * );
 */
export async function getFile(
  fname: string,
  origin: string,
  opts: GetFileOptions = {},
): Promise<string> {
  checkName(fname);
  const url = checkOrigin(origin);
  const subdir = opts.cacheSubdir ?? 'models';
  if (typeof subdir !== 'string' || subdir.split(/[\\/]/).includes('..')) {
    throw invalidParameterError('cacheSubdir', 'a folder name inside the cache', subdir);
  }
  if (opts.cacheDir !== undefined && (typeof opts.cacheDir !== 'string' || opts.cacheDir === '')) {
    throw invalidParameterError('cacheDir', 'a folder path', opts.cacheDir);
  }
  const algorithm = checkOneOf('hashAlgorithm', opts.hashAlgorithm ?? 'auto', [
    'md5',
    'sha256',
    'auto',
  ] as const);
  if (opts.fileHash !== undefined && typeof opts.fileHash !== 'string') {
    throw invalidParameterError('fileHash', 'a hex md5 or sha256 string', opts.fileHash);
  }
  const hash =
    opts.fileHash !== undefined
      ? {
          expected: opts.fileHash.toLowerCase(),
          algorithm: resolveHashAlgorithm(opts.fileHash, algorithm),
        }
      : undefined;
  const root = opts.cacheDir !== undefined ? path.resolve(opts.cacheDir) : cacheDir();
  const d = DOWNLOAD_DEFAULTS;
  const target: Target = {
    url,
    file: path.join(root, subdir, fname),
    hash,
    connectTimeoutMs: checkPositiveInteger(
      'connectTimeoutMs',
      opts.connectTimeoutMs ?? d.connectTimeoutMs,
    ),
    idleTimeoutMs: checkPositiveInteger('idleTimeoutMs', opts.idleTimeoutMs ?? d.idleTimeoutMs),
    maxBytes: checkPositiveInteger('maxBytes', opts.maxBytes ?? d.maxBytes),
    maxRedirects: checkNonNegativeInteger('maxRedirects', opts.maxRedirects ?? d.maxRedirects),
    resume: checkBoolean('resume', opts.resume ?? true),
    progress: checkBoolean('progress', opts.progress ?? true),
    label: `Downloading ${fname}`,
  };

  if (await cached(target, false)) return target.file;
  await fsp.mkdir(path.dirname(target.file), { recursive: true });
  await withFileLock(
    partPaths(target).lock,
    async () => {
      // Another process may have brought the file while this one waited for the lock.
      if (await cached(target, true)) return;
      if ((await attempt(target, true)) === 'retry') await attempt(target, false);
    },
    {
      staleMs: d.lockStaleMs,
      onWait: (holder) =>
        info(`waiting for process ${holder.pid}, which is downloading ${target.file}.`),
    },
  );
  return target.file;
}

/**
 * Keras's `get_file`: a file from a URL, kept in the cache and vouched for by its hash. Downloads go
 * to a temp file in the cache folder, hashed while streaming, fsynced and renamed into place, so a
 * partial download is never taken for the file. Node's own http/https, no extra dependency.
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { invalidParameterError, XferError } from '../errors.js';
import { pathExists, withAtomicPath } from '../util/fs.js';
import { warn } from '../util/log.js';
import { createProgress, type Progress } from '../util/progress.js';
import { checkBoolean, checkOneOf, checkPositiveInteger } from '../util/validate.js';
import { cacheDir, type HashAlgorithm, hashFile, resolveHashAlgorithm } from './cache.js';

const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

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
}

interface Target {
  readonly url: URL;
  readonly file: string;
  readonly hash: { readonly expected: string; readonly algorithm: HashAlgorithm } | undefined;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly progress: boolean;
  readonly label: string;
}

function byHand(target: Target): string {
  const hash = target.hash ? ` (its ${target.hash.algorithm} must be ${target.hash.expected})` : '';
  return `Download it by hand and put it at ${target.file}${hash}.`;
}

function downloadFailed(target: Target, url: URL, reason: string, cause?: unknown): XferError {
  return new XferError(
    'DOWNLOAD_FAILED',
    `could not download ${url.href}: ${reason}. ${byHand(target)}`,
    { url: url.href, origin: target.url.href, path: target.file },
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

/** One GET; resolves once the response headers are in. */
function get(url: URL, target: Target): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    // agent: false gives each request a fresh socket, so 'connect' always fires for the timer.
    const request = client.get(url, {
      agent: false,
      headers: { 'user-agent': 'xfer', accept: '*/*' },
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

/** Follows redirects (at most 5, never from https down to http) to a 2xx response. */
async function open(target: Target): Promise<{ response: http.IncomingMessage; url: URL }> {
  let url = target.url;
  for (let redirects = 0; ; redirects++) {
    let response: http.IncomingMessage;
    try {
      response = await get(url, target);
    } catch (error) {
      throw downloadFailed(target, url, networkReason(error as NodeJS.ErrnoException), error);
    }
    const status = response.statusCode ?? 0;
    if (REDIRECT_STATUSES.has(status)) {
      response.resume();
      const location = response.headers.location;
      if (!location)
        throw downloadFailed(target, url, `HTTP ${status} redirect without a Location header`);
      if (redirects >= MAX_REDIRECTS)
        throw downloadFailed(target, url, `more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw downloadFailed(target, url, `redirected to ${next.href}, which is not http(s)`);
      }
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        throw downloadFailed(
          target,
          url,
          `redirected from https to plain http (${next.href}); refusing the downgrade`,
        );
      }
      url = next;
      continue;
    }
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

/** Streams the body into `temp`, hashing as it goes; checks the length against Content-Length. */
async function receive(
  target: Target,
  response: http.IncomingMessage,
  url: URL,
  temp: string,
): Promise<string | undefined> {
  const header = response.headers['content-length'];
  const total = header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
  const hash: Hash | undefined = target.hash ? createHash(target.hash.algorithm) : undefined;
  let progress: Progress | undefined;
  const { unit, scale } = sizeUnit(total ?? 0);
  if (target.progress && total !== undefined) {
    progress = createProgress({ total: scale(total), label: target.label, unit });
  }
  let received = 0;
  let shown = 0;
  const handle = await fsp.open(temp, 'wx');
  try {
    try {
      for await (const chunk of response as AsyncIterable<Buffer>) {
        received += chunk.length;
        hash?.update(chunk);
        await handle.write(chunk);
        const value = scale(received);
        if (progress && value !== shown) {
          shown = value;
          progress.update(value);
        }
      }
    } catch (error) {
      const sofar =
        total !== undefined ? `after ${received} of ${total} bytes` : `after ${received} bytes`;
      throw downloadFailed(
        target,
        url,
        `the transfer broke off ${sofar} (${networkReason(error as NodeJS.ErrnoException)})`,
        error,
      );
    }
    if (total !== undefined && received !== total) {
      throw downloadFailed(
        target,
        url,
        `the body was truncated: ${received} of ${total} bytes arrived`,
      );
    }
    await handle.sync();
  } finally {
    progress?.stop();
    await handle.close();
  }
  return hash?.digest('hex');
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

/**
 * Returns the path of `fname` in the cache, downloading it from `origin` first unless a copy is
 * there (and matches `fileHash`, when given). Like Keras's `get_file`.
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
  const target: Target = {
    url,
    file: path.join(root, subdir, fname),
    hash,
    connectTimeoutMs: checkPositiveInteger('connectTimeoutMs', opts.connectTimeoutMs ?? 30_000),
    idleTimeoutMs: checkPositiveInteger('idleTimeoutMs', opts.idleTimeoutMs ?? 60_000),
    progress: checkBoolean('progress', opts.progress ?? true),
    label: `Downloading ${fname}`,
  };

  if (await pathExists(target.file)) {
    const stat = await fsp.stat(target.file);
    if (!stat.isFile()) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `the cache path ${target.file} exists but is not a file; remove it and try again.`,
        {
          path: target.file,
        },
      );
    }
    if (!hash) return target.file;
    const actual = await hashFile(target.file, hash.algorithm);
    if (actual === hash.expected) return target.file;
    warn(
      `the cached file ${target.file} has ${hash.algorithm} ${actual}, not ${hash.expected} (incomplete or outdated); downloading it again from ${url.href}.`,
    );
  }

  await withAtomicPath(target.file, async (temp) => {
    const { response, url: finalUrl } = await open(target);
    const actual = await receive(target, response, finalUrl, temp);
    if (hash && actual !== hash.expected) {
      throw new XferError(
        'HASH_MISMATCH',
        `the file downloaded from ${url.href} has ${hash.algorithm} ${actual}, but ${hash.expected} was expected, so it was deleted (a corrupt download, or the file at that URL changed). ${byHand(target)}`,
        {
          url: url.href,
          path: target.file,
          expected: hash.expected,
          received: actual,
          algorithm: hash.algorithm,
        },
      );
    }
  });
  return target.file;
}

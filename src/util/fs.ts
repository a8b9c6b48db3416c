/** File helpers: every file xfer writes appears whole or not at all. */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A temp path beside `target`, so that the final rename stays on one file system. */
export function tempPathFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** fsyncs a folder, so that a rename or unlink in it survives a power cut. */
export async function fsyncDirectory(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // Some file systems refuse to fsync a directory; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

/**
 * Writes `data` to `target` atomically: a temp file in the same folder, fsync, rename, fsync of
 * the folder. A crash leaves either the old file or the new one, never a half-written file.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const temp = tempPathFor(target);
  try {
    const handle = await fsp.open(temp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, target);
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw error;
  }
  await fsyncDirectory(path.dirname(target));
}

/**
 * Runs `write(tempPath)` and renames the result over `target` once it succeeds, for writers that
 * need a path (HDF5). The temp file is removed if the writer fails.
 */
export async function withAtomicPath<T>(
  target: string,
  write: (tempPath: string) => Promise<T>,
): Promise<T> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const temp = tempPathFor(target);
  try {
    const result = await write(temp);
    const handle = await fsp.open(temp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, target);
    await fsyncDirectory(path.dirname(target));
    return result;
  } catch (error) {
    await fsp.rm(temp, { force: true });
    throw error;
  }
}

export async function pathExists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Whether a process with this id runs on this machine (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface FileLockOptions {
  /**
   * A lock whose file was not touched for this many milliseconds is taken as abandoned (its
   * holder refreshes it every `staleMs / 6`). Default 120000.
   */
  staleMs?: number;
  /** Milliseconds between two looks at a held lock. Default 200. */
  pollMs?: number;
  /** Called once when the lock is held by another live process, before waiting for it. */
  onWait?: (holder: LockHolder) => void;
}

/** What a lock file says about its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  token: string;
  created: string;
}

async function readHolder(lock: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await fsp.readFile(lock, 'utf8')) as LockHolder;
    return typeof holder?.token === 'string' ? holder : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A lock is stale when its holder on this machine is dead, or when nobody refreshed it for
 * `staleMs` (a holder on another machine, or one that froze). A lock file still empty is being
 * written by its creator, unless it is old.
 */
async function isStale(lock: string, staleMs: number): Promise<boolean> {
  let mtime: number;
  try {
    mtime = (await fsp.stat(lock)).mtimeMs;
  } catch {
    return false; // gone: the next create will tell
  }
  if (Date.now() - mtime > staleMs) return true;
  const holder = await readHolder(lock);
  if (!holder) return Date.now() - mtime > 5_000;
  return holder.host === os.hostname() && !processAlive(holder.pid);
}

/**
 * Runs `fn` while holding `lock`, a file created with O_EXCL (`wx`), so that two processes never
 * run it at once for the same lock path. A lock left by a killed process is detected (dead pid
 * or no refresh for `staleMs`) and broken; a live one is waited for.
 * @example
 * await withFileLock('/cache/models/vgg16.h5.lock', async () => download());
 */
export async function withFileLock<T>(
  lock: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const staleMs = options.staleMs ?? 120_000;
  const pollMs = options.pollMs ?? 200;
  const token = `${process.pid}.${randomBytes(6).toString('hex')}`;
  const holder: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    token,
    created: new Date().toISOString(),
  };
  await fsp.mkdir(path.dirname(lock), { recursive: true });
  let told = false;
  for (;;) {
    try {
      const handle = await fsp.open(lock, 'wx');
      try {
        await handle.writeFile(JSON.stringify(holder));
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (await isStale(lock, staleMs)) {
      // Renamed away rather than unlinked: of two processes breaking it, only one succeeds.
      await fsp.rename(lock, `${lock}.${token}.stale`).then(
        () => fsp.rm(`${lock}.${token}.stale`, { force: true }),
        () => undefined,
      );
      continue;
    }
    if (!told) {
      told = true;
      const other = await readHolder(lock);
      if (other) options.onWait?.(other);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  const refresh = setInterval(
    () => {
      const now = new Date();
      fsp.utimes(lock, now, now).catch(() => undefined);
    },
    Math.max(10, Math.floor(staleMs / 6)),
  );
  refresh.unref();
  try {
    return await fn();
  } finally {
    clearInterval(refresh);
    // Only our own lock is removed: a lock broken as stale may belong to someone else by now.
    if ((await readHolder(lock))?.token === token) await fsp.rm(lock, { force: true });
  }
}

/**
 * Removes the temp files and folders that `tempPathFor(target)` named for processes now dead
 * (killed mid-write); those of live processes, this one included, are left alone.
 */
export async function removeStaleTempsFor(target: string): Promise<void> {
  const dir = path.dirname(target);
  const prefix = `.${path.basename(target)}.`;
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length))?.[1];
    if (pid === undefined || Number(pid) === process.pid || processAlive(Number(pid))) continue;
    await fsp.rm(path.join(dir, name), { recursive: true, force: true });
  }
}

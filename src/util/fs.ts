/** File helpers: every file xfer writes appears whole or not at all. */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** A temp path beside `target`, so that the final rename stays on one file system. */
export function tempPathFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

async function fsyncDirectory(dir: string): Promise<void> {
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

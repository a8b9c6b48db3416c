/**
 * Replacing a saved model (a tfjs model folder) so that the folder always holds one complete
 * model: for ModelCheckpoint's saves and the model a finished `xfer train` leaves in its run
 * folder. The new weights go in under a fresh name (`weights.<random>.bin`), then `model.json`,
 * the one file that says which weights belong to it, is replaced atomically, then the old weights
 * are removed. A process killed at any moment leaves the old model or the new one, whole.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { fsyncDirectory, removeStaleTempsFor, tempPathFor, writeFileAtomic } from '../util/fs.js';
import { MODEL_JSON, saveModel } from './tfjs-format.js';

/** The weight files this module names; any other name in the folder is never deleted. */
const SHARD_RE = /^weights\.[0-9a-f]{12}\.bin$/;

/** The plain file names the folder's current model.json lists (none when there is none). */
async function listedShards(dir: string): Promise<Set<string>> {
  try {
    const json = JSON.parse(await fsp.readFile(path.join(dir, MODEL_JSON), 'utf8')) as {
      weightsManifest?: { paths?: unknown[] }[];
    };
    const names = (json.weightsManifest ?? []).flatMap((group) => group.paths ?? []);
    return new Set(
      names.filter((n): n is string => typeof n === 'string' && /^[^\\/]+$/.test(n) && n !== '..'),
    );
  } catch {
    return new Set();
  }
}

/**
 * Saves a tfjs model folder so that `dir` always holds one complete model: the new weights go
 * in under a fresh name, then model.json is swapped atomically (the commit), then the old
 * weights are removed. A kill before the swap leaves the old model whole, after it the new one.
 */
export async function replaceModelFolder(model: tf.LayersModel, dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  await removeStaleTempsFor(dir);
  await removeStaleTempsFor(path.join(dir, MODEL_JSON));
  const staging = tempPathFor(dir);
  try {
    await saveModel(model, staging);
    const json = JSON.parse(await fsp.readFile(path.join(staging, MODEL_JSON), 'utf8')) as {
      weightsManifest: { paths: string[] }[];
    };
    const shard = `weights.${randomBytes(6).toString('hex')}.bin`;
    const written = new Set(json.weightsManifest.flatMap((group) => group.paths));
    if (written.size !== 1) {
      throw new XferError(
        'UNSUPPORTED',
        `saveModel wrote ${written.size} weight files; replacing a model folder expects one.`,
      );
    }
    json.weightsManifest = json.weightsManifest.map((group) => ({ ...group, paths: [shard] }));
    await fsp.rename(path.join(staging, [...written][0]!), path.join(dir, shard));
    await fsyncDirectory(dir);
    const previous = await listedShards(dir);
    await writeFileAtomic(path.join(dir, MODEL_JSON), JSON.stringify(json));
    for (const name of await fsp.readdir(dir)) {
      if (name !== shard && (previous.has(name) || SHARD_RE.test(name))) {
        await fsp.rm(path.join(dir, name), { force: true });
      }
    }
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

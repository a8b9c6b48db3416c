/**
 * `loadWeights` / `saveWeights`: Keras's `model.load_weights` and `model.save_weights` for tfjs
 * models, on Keras's legacy `.h5` files, tfjs model folders and URLs.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { pathExists, withAtomicPath } from '../util/fs.js';
import { checkBoolean } from '../util/validate.js';
import { getFile } from './download.js';
import { h5Ready, isHdf5File, type LayerToWrite, readKerasH5, writeKerasH5 } from './h5.js';
import { type Assignment, type MatchContext, matchByName, matchByOrder } from './match.js';
import { kerasWeightNames, legacyWeights } from './model-weights.js';
import type { StoredLayer, WeightValues } from './stored.js';
import { MODEL_JSON, readModelFolder, storedLayersFromFolder } from './tfjs-format.js';

export interface LoadWeightsOptions {
  /**
   * Match layers by name instead of by order; layers of the model the file does not name keep their
   * weights. A tfjs model folder always loads by name. Default `false` (Keras's topological order).
   */
  byName?: boolean;
  /** Skip, with a warning each, layers whose weight count or shapes differ instead of failing. Default `false`. */
  skipMismatch?: boolean;
  /** For an http(s) `source`: the file's md5 or sha256, checked after download. Default: no check. */
  fileHash?: string;
}

type Source =
  | { kind: 'h5'; file: string; label: string }
  | { kind: 'tfjs'; path: string; label: string };

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** The file name a URL is cached under: its last path segment. */
function urlFileName(url: URL): string {
  const last = decodeURIComponent(url.pathname.slice(url.pathname.lastIndexOf('/') + 1));
  return last !== '' && !/[\\/]/.test(last) && last !== '..' && last !== '.' ? last : 'download';
}

async function resolveSource(source: string, fileHash: string | undefined): Promise<Source> {
  let local = source;
  if (isUrl(source)) {
    const url = new URL(source);
    local = await getFile(urlFileName(url), source, fileHash === undefined ? {} : { fileHash });
  }
  const label = local === source ? source : `${local} (from ${source})`;
  if (!(await pathExists(local))) {
    throw new XferError('NOT_FOUND', `weight file ${local} does not exist.`, { path: local });
  }
  const stat = await fsp.stat(local);
  if (stat.isDirectory()) {
    if (!(await pathExists(path.join(local, MODEL_JSON)))) {
      throw new XferError(
        'NOT_FOUND',
        `${local} is a folder without ${MODEL_JSON}; pass a Keras .h5 weight file or a tfjs model folder.`,
        {
          path: path.join(local, MODEL_JSON),
        },
      );
    }
    return { kind: 'tfjs', path: local, label };
  }
  if (local.toLowerCase().endsWith('.json')) return { kind: 'tfjs', path: local, label };
  if (await isHdf5File(local)) return { kind: 'h5', file: local, label };
  const head = Buffer.alloc(4);
  const handle = await fsp.open(local, 'r');
  try {
    await handle.read(head, 0, 4, 0);
  } finally {
    await handle.close();
  }
  if (head.toString('latin1') === 'PK\x03\x04') {
    throw new XferError(
      'UNSUPPORTED',
      `${local} is a zip archive (a Keras 3 '.keras' file?); xfer reads Keras's HDF5 weight files. In Keras, save with model.save('model.h5') or model.save_weights('weights.h5') (Keras 2) and load that.`,
      {
        path: local,
      },
    );
  }
  throw new XferError(
    'CORRUPT_FILE',
    `${local} is neither an HDF5 file (no HDF5 signature) nor a tfjs model.json; it may be damaged or an incomplete download.`,
    {
      path: local,
    },
  );
}

/** Reads every value first, then assigns: a file that fails to read leaves the model as it was. */
function assign(assignments: readonly Assignment[], source: string): void {
  const values: WeightValues[] = assignments.map(({ target, stored }) => {
    const data = stored.read();
    const size = (target.variable.shape as number[]).reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new XferError(
        'CORRUPT_FILE',
        `${source}: weight '${stored.name}' holds ${data.length} values but its shape needs ${size}.`,
        {
          path: source,
          weight: stored.name,
        },
      );
    }
    return data;
  });
  assignments.forEach(({ target }, i) => {
    const variable = target.variable;
    const tensor = tf.tensor(values[i]!, variable.shape as number[], variable.dtype);
    try {
      variable.write(tensor);
    } finally {
      tensor.dispose();
    }
  });
}

function match(
  model: tf.LayersModel,
  layers: readonly StoredLayer[],
  byName: boolean,
  context: MatchContext,
) {
  return byName
    ? matchByName(model.layers, layers, context)
    : matchByOrder(model.layers, layers, context);
}

function checkModel(model: unknown): tf.LayersModel {
  if (!(model instanceof tf.LayersModel)) {
    throw invalidParameterError('model', 'a tf.LayersModel', model);
  }
  return model;
}

/**
 * Loads weights into `model`, like Keras's `model.load_weights`. `source` is a Keras `.h5` file
 * (`save_weights` output, a whole-model `model.save('x.h5')`, or Keras's ImageNet files), a tfjs
 * model folder or its model.json (loaded by name), or an http(s) URL (cached with `getFile`).
 * Nothing is assigned unless everything fits; a mismatch names the first layer that differs.
 * @example
 * const model = VGG16({ includeTop: false, weights: null });
 * await loadWeights(model, 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5');
 * await loadWeights(head, 'checkpoint.h5', { byName: true, skipMismatch: true });
 */
export async function loadWeights(
  model: tf.LayersModel,
  source: string,
  opts: LoadWeightsOptions = {},
): Promise<void> {
  checkModel(model);
  if (typeof source !== 'string' || source === '') {
    throw invalidParameterError('source', 'a path or http(s) URL', source);
  }
  const byName = checkBoolean('byName', opts.byName ?? false);
  const skipMismatch = checkBoolean('skipMismatch', opts.skipMismatch ?? false);
  await initBackend();
  const resolved = await resolveSource(source, opts.fileHash);
  if (resolved.kind === 'tfjs') {
    const folder = await readModelFolder(resolved.path);
    const layers = storedLayersFromFolder(folder);
    const context = { source: resolved.label, skipMismatch };
    assign(matchByName(model.layers, layers, context), resolved.label);
    return;
  }
  await h5Ready();
  readKerasH5(resolved.file, (contents) => {
    const context = { source: resolved.label, skipMismatch };
    assign(match(model, contents.layers, byName, context), resolved.label);
  });
}

/**
 * Saves `model`'s weights in Keras's legacy HDF5 layout (what Keras 2's `save_weights('x.h5')`
 * writes; Keras's `load_weights` reads it), atomically.
 * @example
 * await saveWeights(model, 'checkpoints/best.weights.h5');
 */
export async function saveWeights(model: tf.LayersModel, file: string): Promise<void> {
  checkModel(model);
  if (typeof file !== 'string' || !/\.(h5|hdf5)$/i.test(file)) {
    throw invalidParameterError(
      'file',
      "a path ending in '.h5' or '.hdf5' (saveWeights writes Keras HDF5; use saveModel for a tfjs model folder)",
      file,
    );
  }
  await initBackend();
  await h5Ready();
  const layers: LayerToWrite[] = model.layers.map((layer) => {
    const weights = legacyWeights(layer);
    const names = kerasWeightNames(layer, weights);
    return {
      name: layer.name,
      weights: weights.map((w, i) => {
        // Only read by the writer, so the backend's own array (cpu) can be passed without a copy.
        const data = w.variable.read().dataSync();
        return {
          name: names[i]!,
          shape: w.variable.shape as number[],
          values:
            data instanceof Float32Array || data instanceof Int32Array
              ? data
              : Float32Array.from(data as ArrayLike<number>),
        };
      }),
    };
  });
  await withAtomicPath(file, async (temp) => writeKerasH5(temp, layers));
}

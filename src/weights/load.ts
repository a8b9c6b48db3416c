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
import { info, warn } from '../util/log.js';
import { checkBoolean } from '../util/validate.js';
import { getFile } from './download.js';
import { h5Ready, isHdf5File, type LayerToWrite, readKerasH5, writeKerasH5 } from './h5.js';
import { hfUrl, isHfSource } from './hf.js';
import { pickleRefusal, readKerasArchive } from './keras-archive.js';
import { kerasFileLayout } from './keras-layout.js';
import {
  configKeys,
  entriesByConfig,
  entriesByModelKeys,
  isKeras3Layout,
  readKeras3H5,
} from './keras3.js';
import { type Assignment, type MatchContext, matchByName, matchByOrder } from './match.js';
import { kerasWeightNames, legacyWeights } from './model-weights.js';
import { looksLikeSafetensors, readSafetensors } from './safetensors.js';
import { pickNameMap, storedLayersFromSafetensors } from './safetensors-layers.js';
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
  /** For an http(s) or `hf:` `source`: the file's md5 or sha256, checked after download. Default: no check. */
  fileHash?: string;
  /**
   * For a `.safetensors` file: its name layout (`'torchvision-resnet50'`, `'torchvision-mobilenet_v2'`,
   * `'timm-mobilenetv2'`). Default: detected from the tensor names.
   */
  layout?: string;
}

type Source =
  | { kind: 'h5'; file: string; label: string }
  | { kind: 'keras3'; file: string; label: string }
  | { kind: 'keras'; file: string; label: string }
  | { kind: 'safetensors'; file: string; label: string }
  | { kind: 'tfjs'; path: string; label: string };

/** PyTorch's pickle-based file endings; such files are refused, never opened. */
const PICKLE_EXTENSIONS = /\.(pt|pth|bin|ckpt|pkl|pickle)$/i;

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
  if (PICKLE_EXTENSIONS.test(source.replace(/[?#].*$/, ''))) throw pickleRefusal(source);
  if (isHfSource(source)) {
    const hf = hfUrl(source);
    local = await getFile(hf.cacheName, hf.url, {
      cacheSubdir: 'huggingface',
      ...(fileHash === undefined ? {} : { fileHash }),
    });
  } else if (isUrl(source)) {
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
  if (await isHdf5File(local)) {
    await h5Ready();
    return { kind: isKeras3Layout(local) ? 'keras3' : 'h5', file: local, label };
  }
  const head = Buffer.alloc(16);
  const handle = await fsp.open(local, 'r');
  try {
    await handle.read(head, 0, 16, 0);
  } finally {
    await handle.close();
  }
  if (head.subarray(0, 4).toString('latin1') === 'PK\x03\x04')
    return { kind: 'keras', file: local, label };
  // A bare pickle starts with PROTO (0x80) and a protocol number 2..5.
  if (head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) throw pickleRefusal(local);
  if (local.toLowerCase().endsWith('.safetensors') || looksLikeSafetensors(head, stat.size)) {
    return { kind: 'safetensors', file: local, label };
  }
  throw new XferError(
    'CORRUPT_FILE',
    `${local} is neither an HDF5 file (no HDF5 signature) nor a tfjs model.json, a .keras archive or a .safetensors file; it may be damaged or an incomplete download.`,
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
 * Loads weights into `model`, like Keras's `model.load_weights`. `source` is one of:
 * - a Keras legacy `.h5` file (`save_weights` output, a whole-model `model.save('x.h5')`, Keras's
 *   ImageNet files), by order or `byName`;
 * - a Keras 3 `.weights.h5` (matched as Keras 3 does, by class name and position) or `.keras`
 *   archive (by layer name, from its config.json; nothing in the config is run);
 * - a tfjs model folder or its model.json (by name; Keras 3 configs too);
 * - a PyTorch `.safetensors` state dict in torchvision or timm layout (ResNet50, MobileNetV2), by
 *   name through the architecture's name map, transposed to tfjs layouts, its batch norm epsilon
 *   applied to the model; build the model with `TorchvisionResNet50` / `TorchvisionMobileNetV2`;
 * - an http(s) URL or `hf:<org>/<repo>[/<file>]` (default file `model.safetensors`), cached with
 *   `getFile` and checked against `fileHash` when given.
 * Pickle files (`.pt`, `.pth`, `.bin`) are refused: unpickling runs code. Nothing is assigned
 * unless everything fits; a mismatch names the first layer that differs.
 * @example
 * const model = VGG16({ includeTop: false, weights: null });
 * await loadWeights(model, 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5');
 * await loadWeights(head, 'checkpoint.h5', { byName: true, skipMismatch: true });
 * await loadWeights(resnet, 'hf:timm/resnet50.tv_in1k', { fileHash: '<sha256>' });
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
  if (opts.layout !== undefined && typeof opts.layout !== 'string') {
    throw invalidParameterError('layout', 'a safetensors layout name', opts.layout);
  }
  await initBackend();
  const resolved = await resolveSource(source, opts.fileHash);
  if (resolved.kind === 'tfjs') {
    const folder = await readModelFolder(resolved.path);
    const layers = storedLayersFromFolder(folder);
    const context = { source: resolved.label, skipMismatch };
    assign(matchByName(model.layers, layers, context), resolved.label);
    return;
  }
  const context = { source: resolved.label, skipMismatch };
  if (resolved.kind === 'safetensors') {
    await loadSafetensors(model, resolved.file, resolved.label, opts.layout, skipMismatch);
    return;
  }
  await h5Ready();
  if (resolved.kind === 'keras') {
    const archive = await readKerasArchive(resolved.file);
    try {
      const names = configKeys(archive.config, resolved.label);
      readKeras3H5(archive.weightsFile, (entries) => {
        const layers = entriesByConfig(entries, names, resolved.label);
        assign(matchByName(model.layers, layers, context), resolved.label);
      });
    } finally {
      await archive.dispose();
    }
    return;
  }
  if (resolved.kind === 'keras3') {
    readKeras3H5(resolved.file, (entries) => {
      const layers = entriesByModelKeys(model, entries, resolved.label);
      assign(matchByName(model.layers, layers, context), resolved.label);
    });
    return;
  }
  readKerasH5(resolved.file, (contents) => {
    assign(match(model, contents.layers, byName, context), resolved.label);
  });
}

/**
 * A PyTorch state dict by name, through its architecture's name map; the batch norms it loads take
 * the source's epsilon (torchvision's 1e-5), so the model computes what the source computes.
 */
async function loadSafetensors(
  model: tf.LayersModel,
  file: string,
  label: string,
  layout: string | undefined,
  skipMismatch: boolean,
): Promise<void> {
  const st = await readSafetensors(file);
  const map = pickNameMap(st, layout);
  const layers = storedLayersFromSafetensors(st, map, skipMismatch);
  let assignments: Assignment[];
  try {
    assignments = matchByName(model.layers, layers, { source: label, skipMismatch });
  } catch (error) {
    if (error instanceof XferError && error.code === 'WEIGHTS_MISMATCH') {
      throw new XferError(
        'WEIGHTS_MISMATCH',
        `${error.message} The file is in the ${map.name} layout; build the model with ${map.builder}, which reproduces that network (no conv biases, its padding and strides).`,
        { ...error.details, layout: map.name },
        { cause: error },
      );
    }
    throw error;
  }
  assign(assignments, label);
  if (!model.layers.some((layer) => layer.name === map.builderMarker)) {
    warn(
      `loadWeights: ${label} is a ${map.name} state dict, but the model was not built with ${map.builder}; its padding differs from PyTorch's, so its outputs will differ from the source network's.`,
    );
  }
  const changed = new Set<string>();
  for (const { target } of assignments) {
    const layer = target.owner as unknown as {
      epsilon?: number;
      getClassName(): string;
      name: string;
    };
    if (layer.getClassName() === 'BatchNormalization' && layer.epsilon !== map.bnEpsilon) {
      // tfjs reads `epsilon` at call time and serializes it, so the change is the model's from now on.
      layer.epsilon = map.bnEpsilon;
      changed.add(layer.name);
    }
  }
  if (changed.size > 0) {
    info(
      `loadWeights: set the epsilon of ${changed.size} BatchNormalization layer(s) to ${map.bnEpsilon}, the ${map.name} source's.`,
    );
  }
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
              : new Float32Array(data as Uint8Array),
        };
      }),
    };
  });
  // Keras's own layout where xfer's graph differs from Keras's (ConvNeXt's nested Sequentials).
  await withAtomicPath(file, async (temp) => writeKerasH5(temp, kerasFileLayout(layers)));
}

/**
 * tfjs's layers format on disk: a folder with `model.json` (topology + weights manifest) and
 * `weights.bin`, read and written through `tf.io` handlers of our own (tfjs's file handlers live in
 * tfjs-node, which we cannot depend on). Shard paths a manifest lists stay inside the folder.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { pathExists, writeFileAtomic } from '../util/fs.js';
import { isKeras3Topology, rewriteKeras3Topology } from './keras3-config.js';
import type { StoredLayer, StoredWeight, WeightValues } from './stored.js';
import { checkLayersTopology } from './topology.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

const BYTES_PER_ELEMENT: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** A model folder read from disk: its model.json and the weight bytes it lists, checked. */
export interface ModelFolder {
  readonly dir: string;
  readonly modelJsonPath: string;
  readonly json: tf.io.ModelJSON;
  readonly weightSpecs: tf.io.WeightsManifestEntry[];
  readonly weightData: ArrayBuffer;
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** `source` is a model folder or the model.json inside one. */
async function locateModelJson(source: string): Promise<{ dir: string; modelJsonPath: string }> {
  if (!(await pathExists(source))) {
    throw new XferError(
      'NOT_FOUND',
      `no model at ${source}: it does not exist. Pass the folder saveModel wrote (with model.json and weights.bin in it) or its model.json.`,
      {
        path: source,
      },
    );
  }
  if (await isDirectory(source)) {
    const modelJsonPath = path.join(source, MODEL_JSON);
    if (!(await pathExists(modelJsonPath))) {
      throw new XferError(
        'NOT_FOUND',
        `the model folder ${source} has no ${MODEL_JSON}; saveModel writes ${MODEL_JSON} and ${WEIGHTS_BIN} there.`,
        {
          path: modelJsonPath,
        },
      );
    }
    return { dir: source, modelJsonPath };
  }
  return { dir: path.dirname(source), modelJsonPath: source };
}

/** A shard path from a manifest, resolved inside `dir`; absolute paths and `..` are refused. */
function shardPath(dir: string, modelJsonPath: string, shard: unknown): string {
  if (typeof shard !== 'string' || shard === '') {
    throw new XferError(
      'CORRUPT_FILE',
      `${modelJsonPath} lists a weight file path that is not a string: ${JSON.stringify(shard)}.`,
      {
        path: modelJsonPath,
      },
    );
  }
  const parts = shard.split(/[\\/]/);
  if (path.isAbsolute(shard) || path.win32.isAbsolute(shard) || parts.includes('..')) {
    throw new XferError(
      'CORRUPT_FILE',
      `${modelJsonPath} lists the weight file '${shard}', which is outside the model's folder; weight files must sit beside model.json.`,
      {
        path: modelJsonPath,
        shard,
      },
    );
  }
  return path.join(dir, ...parts);
}

/**
 * The bytes one weight spec takes in the shards. A spec is data from the file: its name must be a
 * string, its dtype one tfjs stores at a fixed size, its shape non-negative integers whose product
 * stays exact; anything else is refused here, before tfjs decodes a byte.
 */
/** Refuses a shard that is, or passes through, a symbolic link leading out of the model folder. */
async function checkInsideFolder(
  dir: string,
  file: string,
  modelJsonPath: string,
  shard: string,
): Promise<void> {
  const [realDir, realFile] = await Promise.all([fsp.realpath(dir), fsp.realpath(file)]);
  const relative = path.relative(realDir, realFile);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new XferError(
      'CORRUPT_FILE',
      `${modelJsonPath} lists the weight file '${shard}', a symbolic link to ${realFile}, outside the model's folder; weight files must sit beside model.json.`,
      { path: modelJsonPath, shard, target: realFile },
    );
  }
}

function specBytes(spec: unknown, modelJsonPath: string): number {
  const entry = spec as Partial<tf.io.WeightsManifestEntry> | null;
  const bad = (what: string) =>
    new XferError('CORRUPT_FILE', `${modelJsonPath}: a weightsManifest entry ${what}.`, {
      path: modelJsonPath,
      spec,
    });
  if (entry === null || typeof entry !== 'object' || typeof entry.name !== 'string') {
    throw bad('has no name');
  }
  const dtype = entry.quantization?.dtype ?? entry.dtype;
  const size = typeof dtype === 'string' ? BYTES_PER_ELEMENT[dtype] : undefined;
  if (size === undefined || !Object.hasOwn(BYTES_PER_ELEMENT, dtype as string)) {
    throw bad(
      `('${entry.name}') has the dtype ${JSON.stringify(dtype)}, which a layers model does not store`,
    );
  }
  const shape = entry.shape;
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw bad(`('${entry.name}') has the shape ${JSON.stringify(shape)}, not a list of sizes`);
  }
  const bytes = shape.reduce((a, b) => a * b, 1) * size;
  if (!Number.isSafeInteger(bytes)) throw bad(`('${entry.name}') declares an impossible size`);
  return bytes;
}

/** Reads and checks a model folder: model.json parses, every shard exists, byte counts agree. */
export async function readModelFolder(source: string): Promise<ModelFolder> {
  const { dir, modelJsonPath } = await locateModelJson(source);
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(await fsp.readFile(modelJsonPath, 'utf8')) as tf.io.ModelJSON;
  } catch (error) {
    throw new XferError(
      'CORRUPT_FILE',
      `${modelJsonPath} is not valid JSON (${(error as Error).message}).`,
      {
        path: modelJsonPath,
      },
    );
  }
  if (json === null || typeof json !== 'object' || json.modelTopology == null) {
    throw new XferError(
      'CORRUPT_FILE',
      `${modelJsonPath} has no 'modelTopology'; it is not a tfjs layers model.json.`,
      {
        path: modelJsonPath,
      },
    );
  }
  const manifest = json.weightsManifest ?? [];
  if (!Array.isArray(manifest)) {
    throw new XferError('CORRUPT_FILE', `${modelJsonPath}: 'weightsManifest' is not a list.`, {
      path: modelJsonPath,
    });
  }
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  const shardFiles: string[] = [];
  for (const group of manifest) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group?.weights)) {
      throw new XferError(
        'CORRUPT_FILE',
        `${modelJsonPath}: a weightsManifest entry lacks 'paths' or 'weights'.`,
        {
          path: modelJsonPath,
        },
      );
    }
    for (const shard of group.paths) {
      const file = shardPath(dir, modelJsonPath, shard);
      if (!(await pathExists(file))) {
        throw new XferError(
          'NOT_FOUND',
          `the model in ${dir} is incomplete: ${modelJsonPath} lists the weight file '${shard}', which does not exist (expected at ${file}).`,
          {
            path: file,
          },
        );
      }
      await checkInsideFolder(dir, file, modelJsonPath, shard);
      shardFiles.push(file);
      buffers.push(await fsp.readFile(file));
    }
    weightSpecs.push(...group.weights);
  }
  const held = buffers.reduce((sum, b) => sum + b.byteLength, 0);
  const sizes = weightSpecs.map((spec) => specBytes(spec, modelJsonPath));
  {
    const needed = sizes.reduce((a, b) => a + b, 0);
    if (needed !== held) {
      throw new XferError(
        'CORRUPT_FILE',
        `the model in ${dir} is incomplete or damaged: ${MODEL_JSON} describes ${needed} bytes of weights but ${shardFiles.map((f) => path.basename(f)).join(', ') || 'its weight files'} hold ${held}.`,
        {
          path: modelJsonPath,
          expected: needed,
          received: held,
        },
      );
    }
  }
  const weightData = new Uint8Array(held);
  let offset = 0;
  for (const buffer of buffers) {
    weightData.set(buffer, offset);
    offset += buffer.byteLength;
  }
  return { dir, modelJsonPath, json, weightSpecs, weightData: weightData.buffer };
}

/** A `tf.io` load handler over a checked model folder. */
function folderLoadHandler(folder: ModelFolder): tf.io.IOHandler {
  return {
    load: async () => {
      const { json } = folder;
      const artifacts: tf.io.ModelArtifacts = {
        modelTopology: json.modelTopology,
        weightSpecs: folder.weightSpecs,
        weightData: folder.weightData,
      };
      if (json.format !== undefined) artifacts.format = json.format;
      if (json.generatedBy !== undefined) artifacts.generatedBy = json.generatedBy;
      if (json.convertedBy !== undefined) artifacts.convertedBy = json.convertedBy;
      if (json.trainingConfig !== undefined) artifacts.trainingConfig = json.trainingConfig;
      if (json.userDefinedMetadata !== undefined)
        artifacts.userDefinedMetadata = json.userDefinedMetadata;
      return artifacts;
    },
  };
}

/** A `tf.io` save handler writing model.json and weights.bin into `dir`, each atomically. */
function folderSaveHandler(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts) => {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new XferError(
          'UNSUPPORTED',
          'saveModel writes tfjs layers models; this model has a binary (graph) topology.',
        );
      }
      const weightData = artifacts.weightData
        ? tf.io.CompositeArrayBuffer.join(artifacts.weightData)
        : new ArrayBuffer(0);
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.format !== undefined) json.format = artifacts.format;
      if (artifacts.generatedBy !== undefined) json.generatedBy = artifacts.generatedBy;
      if (artifacts.convertedBy !== undefined) json.convertedBy = artifacts.convertedBy;
      if (artifacts.trainingConfig !== undefined) json.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata !== undefined)
        json.userDefinedMetadata = artifacts.userDefinedMetadata;
      const text = JSON.stringify(json);
      // Weights first: a model.json on disk always points at weights that are there.
      await writeFileAtomic(path.join(dir, WEIGHTS_BIN), new Uint8Array(weightData));
      await writeFileAtomic(path.join(dir, MODEL_JSON), text);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: Buffer.byteLength(JSON.stringify(json.modelTopology)),
          weightSpecsBytes: Buffer.byteLength(JSON.stringify(json.weightsManifest)),
          weightDataBytes: weightData.byteLength,
        },
      };
    },
  };
}

function checkModel(name: string, model: unknown): tf.LayersModel {
  if (!(model instanceof tf.LayersModel)) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `Expected a tf.LayersModel for ${name} but received ${model === null ? 'null' : typeof model}`,
      {
        parameter: name,
      },
    );
  }
  return model;
}

function checkPath(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new XferError(
      'INVALID_ARGUMENT',
      `Expected a non-empty path string for ${name} but received ${JSON.stringify(value)} of type ${typeof value}`,
      {
        parameter: name,
      },
    );
  }
  return value;
}

/**
 * Saves a model in tfjs's layers format: `dir/model.json` and `dir/weights.bin`, each written
 * atomically. Custom layers must be registered with `tf.serialization.registerClass`.
 * @example
 * await saveModel(model, 'runs/cats-dogs/model');
 * const again = await loadModel('runs/cats-dogs/model');
 */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  checkModel('model', model);
  checkPath('dir', dir);
  await initBackend();
  if ((await pathExists(dir)) && !(await isDirectory(dir))) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `saveModel writes a folder, but ${dir} is a file. Pass a folder path; model.json and weights.bin are written inside it.`,
      {
        path: dir,
      },
    );
  }
  await fsp.mkdir(dir, { recursive: true });
  await model.save(folderSaveHandler(dir));
}

/**
 * Loads a model saved by `saveModel` (or any tfjs layers model folder: Keras models converted with
 * tensorflowjs_converter). `source` is the folder or its model.json.
 * @example
 * const model = await loadModel('runs/cats-dogs/model');
 * const probabilities = model.predict(batch) as tf.Tensor;
 */
export async function loadModel(source: string): Promise<tf.LayersModel> {
  checkPath('source', source);
  await initBackend();
  const folder = await readModelFolder(source);
  if (folder.json.format === 'graph-model') {
    throw new XferError(
      'UNSUPPORTED',
      `${folder.modelJsonPath} is a tfjs graph model (a frozen TensorFlow graph); loadModel loads tfjs layers models, which keep their layers and can be trained.`,
      { path: folder.modelJsonPath },
    );
  }
  // A Keras 3 config (tfjs cannot parse it) is rewritten, allowlisted layers only.
  const modelTopology = isKeras3Topology(folder.json.modelTopology)
    ? rewriteKeras3Topology(folder.json.modelTopology, folder.modelJsonPath)
    : folder.json.modelTopology;
  checkLayersTopology(modelTopology, folder.modelJsonPath);
  try {
    return await tf.loadLayersModel(
      folderLoadHandler({ ...folder, json: { ...folder.json, modelTopology } }),
      { strict: true },
    );
  } catch (error) {
    const message = (error as Error).message ?? String(error);
    const unknown = /Unknown layer: (\S+?)\.?\s/.exec(`${message} `);
    if (unknown) {
      throw new XferError(
        'UNSUPPORTED',
        `${folder.modelJsonPath} uses the layer class '${unknown[1]}', which is not registered. Import the module that defines it (it must call tf.serialization.registerClass) before loadModel.`,
        {
          path: folder.modelJsonPath,
          className: unknown[1],
        },
        { cause: error },
      );
    }
    throw new XferError(
      'CORRUPT_FILE',
      `could not rebuild the model in ${folder.dir}: ${message}`,
      {
        path: folder.modelJsonPath,
      },
      { cause: error },
    );
  }
}

/**
 * The weights of a model folder as stored layers, grouped by the layer each name ends in
 * (`block1_conv1/kernel` -> `block1_conv1`), for loading by name into another model.
 */
export function storedLayersFromFolder(folder: ModelFolder): StoredLayer[] {
  let tensors: tf.NamedTensorMap;
  try {
    tensors = tf.io.decodeWeights(folder.weightData, folder.weightSpecs);
  } catch (error) {
    throw new XferError(
      'CORRUPT_FILE',
      `the weights of ${folder.modelJsonPath} cannot be decoded (${(error as Error).message}).`,
      { path: folder.modelJsonPath },
      { cause: error },
    );
  }
  const layers = new Map<string, StoredWeight[]>();
  try {
    for (const spec of folder.weightSpecs) {
      if (spec.group === 'optimizer') continue;
      const tensor = tensors[spec.name];
      if (!tensor) continue;
      const raw = tensor.dataSync();
      const values: WeightValues =
        tensor.dtype === 'int32' || tensor.dtype === 'bool'
          ? new Int32Array(raw as Float32Array)
          : new Float32Array(raw as Float32Array); // a copy: the constructor, not the iterator
      const parts = spec.name.split('/').filter((p) => p !== '');
      const layerName = parts.length >= 2 ? parts[parts.length - 2]! : spec.name;
      const weight: StoredWeight = {
        name: spec.name,
        shape: [...tensor.shape],
        read: () => values,
      };
      const list = layers.get(layerName);
      if (list) list.push(weight);
      else layers.set(layerName, [weight]);
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
  return [...layers].map(([name, weights]) => ({ name, weights }));
}

/**
 * Keras 3's `.weights.h5` layout (`saving_lib.py`, `H5IOStore`): one group per saveable at the path
 * of its attributes, each layer's variables as datasets `vars/0`, `vars/1`... in the layer's own
 * order (trainable, then non-trainable: kernel, bias; gamma, beta, moving_mean, moving_variance).
 * A model's layers sit under `layers/<name>`, where the name is NOT the layer's name but its class
 * name in snake case, numbered per class in the model's layer order (`conv2d`, `conv2d_1`,
 * `batch_normalization`...; Keras does this because layer names are not reproducible). A nested
 * model's layers sit under `layers/functional/layers/...`.
 *
 * So a bare `.weights.h5` is matched to a model the way Keras 3's `load_weights` does it, by these
 * class-and-position keys; a `.keras` archive's `config.json` gives each key its real layer name,
 * which lets it load by name into another model.
 */
import * as path from 'node:path';
import type { File } from 'h5wasm/node';
import type * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import {
  corrupt,
  H5G_DATASET,
  H5G_GROUP,
  hdf5,
  readConfinedH5,
  type SafeReader,
  withConfinedFiles,
  withHdf5Errors,
} from './h5.js';
import { isContainer, type Layer } from './model-weights.js';
import type { StoredLayer, StoredWeight } from './stored.js';

/** Deeper nesting than this is not a Keras model; refusing it bounds the walk. */
const MAX_DEPTH = 32;
/** More groups than this is not a Keras weight file. */
const MAX_GROUPS = 200_000;

/** One layer of a Keras 3 weight file: its key path (`layers/conv2d_1`) and variables. */
export interface Keras3Entry {
  readonly key: string;
  readonly weights: StoredWeight[];
}

/** Keras's `naming.to_snake_case`: `Conv2D` -> `conv2d`, `BatchNormalization` -> `batch_normalization`, `ReLU` -> `re_lu`. */
export function toSnakeCase(name: string): string {
  return name
    .replace(/\W+/g, '')
    .replace(/(.)([A-Z][a-z]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** The key of each layer of a list, numbered per class as Keras's `_save_container_state` does. */
function containerKeys(classNames: readonly string[], prefix: string): string[] {
  const used = new Map<string, number>();
  return classNames.map((className) => {
    let name = toSnakeCase(className);
    const count = used.get(name);
    if (count === undefined) used.set(name, 0);
    else {
      used.set(name, count + 1);
      name = `${name}_${count + 1}`;
    }
    return `${prefix}layers/${name}`;
  });
}

/** The class name Keras 3 would give a tfjs layer: tfjs's `Model` is Keras 3's `Functional`. */
function keras3ClassName(layer: Layer): string {
  const className = layer.getClassName();
  if (isContainer(layer)) return className === 'Sequential' ? 'Sequential' : 'Functional';
  return className;
}

/** Key path -> layer for a tfjs model, through nested models. */
export function modelKeys(model: tf.LayersModel): Map<string, Layer> {
  const keys = new Map<string, Layer>();
  const walk = (layers: readonly Layer[], prefix: string): void => {
    // Keras 3's Sequential lists its layers without the InputLayer.
    const listed = layers.filter((l) => l.getClassName() !== 'InputLayer' || prefix === '');
    containerKeys(listed.map(keras3ClassName), prefix).forEach((key, i) => {
      const layer = listed[i]!;
      keys.set(key, layer);
      if (isContainer(layer)) walk(layer.layers, `${key}/`);
    });
  };
  walk(model.layers, '');
  return keys;
}

interface ConfigLayer {
  class_name?: unknown;
  config?: { name?: unknown; layers?: unknown };
}

/**
 * Key path -> real layer name from a `.keras` archive's `config.json`. Only names and class names
 * are read; nothing in the config is deserialized or run.
 */
export function configKeys(config: unknown, source: string): Map<string, string> {
  const keys = new Map<string, string>();
  const walk = (layers: unknown, prefix: string, depth: number): void => {
    if (!Array.isArray(layers) || depth > MAX_DEPTH) {
      throw new XferError(
        'CORRUPT_FILE',
        `${source}: config.json has no list of layers where a model's layers should be.`,
        { file: source },
      );
    }
    const items = layers as ConfigLayer[];
    const listed = items.filter(
      (l) => prefix === '' || (l as ConfigLayer)?.class_name !== 'InputLayer',
    );
    const classNames = listed.map((l) => (typeof l?.class_name === 'string' ? l.class_name : ''));
    containerKeys(classNames, prefix).forEach((key, i) => {
      const layer = listed[i]!;
      const name = layer?.config?.name;
      if (typeof name === 'string') keys.set(key, name);
      if (Array.isArray(layer?.config?.layers)) walk(layer.config.layers, `${key}/`, depth + 1);
    });
  };
  const root = config as ConfigLayer;
  walk(root?.config?.layers, '', 0);
  return keys;
}

/** True when an HDF5 file has Keras 3's layout: `layers` or `vars` groups and no `layer_names`. */
export function isKeras3Layout(file: string): boolean {
  return withHdf5Errors(() => withConfinedFiles(file, () => isKeras3LayoutConfined(file)));
}

function isKeras3LayoutConfined(file: string): boolean {
  let h5: File;
  try {
    h5 = new (hdf5().File)(path.resolve(file), 'r');
  } catch {
    return false;
  }
  try {
    const attributes = hdf5().Module.get_attribute_names(h5.file_id, '/') as string[];
    if (attributes.some((a) => a.startsWith('layer_names'))) return false;
    const names = new Set(hdf5().Module.get_names(h5.file_id, '/', false) as string[]);
    return names.has('layers') || (names.has('vars') && !names.has('model_weights'));
  } catch {
    // A damaged root: the legacy reader, which reports damage as CORRUPT_FILE, gets the file.
    return false;
  } finally {
    h5.close();
  }
}

/** Whether a key path names a layer (`layers/x`, `layers/x/layers/y`), not an optimizer or a seed. */
function isLayerKey(key: string): boolean {
  return /^layers\/[^/]+(\/layers\/[^/]+)*$/.test(key);
}

/**
 * Opens a Keras 3 `.weights.h5` file, hands its layers (with variables) to `use`, and closes it.
 * Call `h5Ready()` first. Links are refused, never followed.
 */
export function readKeras3H5<T>(file: string, use: (entries: Keras3Entry[]) => T): T {
  return readConfinedH5(file, (reader, h5) => collect(reader, h5, file), use);
}

function collect(reader: SafeReader, h5: File, file: string): Keras3Entry[] {
  const entries: Keras3Entry[] = [];
  let groups = 0;
  const visit = (group: string, key: string, depth: number): void => {
    if (depth > MAX_DEPTH || ++groups > MAX_GROUPS) {
      throw corrupt(file, `its groups nest deeper than ${MAX_DEPTH} or number over ${MAX_GROUPS}.`);
    }
    const children = hdf5().Module.get_names(h5.file_id, group, false) as string[];
    for (const child of children) {
      const found = reader.resolve(group, child);
      if (found?.type !== H5G_GROUP) continue;
      const childKey = key === '' ? child : `${key}/${child}`;
      if (child === 'vars') {
        if (isLayerKey(key))
          entries.push({ key, weights: readVars(reader, h5, found.path, key, file) });
        continue;
      }
      visit(found.path, childKey, depth + 1);
    }
  };
  visit('/', '', 0);
  return entries;
}

function readVars(
  reader: SafeReader,
  h5: File,
  group: string,
  key: string,
  file: string,
): StoredWeight[] {
  const names = hdf5().Module.get_names(h5.file_id, group, false) as string[];
  const indices = names.map(Number);
  if (names.some((n, i) => !/^\d+$/.test(n) || indices[i]! >= names.length)) {
    throw corrupt(
      file,
      `'${group}' should hold variables named 0..${names.length - 1} but holds ${names.slice(0, 8).join(', ')}.`,
    );
  }
  return names
    .map((name) => ({ name, index: Number(name) }))
    .sort((a, b) => a.index - b.index)
    .map(({ name }) => {
      const found = reader.resolve(group, name);
      if (found?.type !== H5G_DATASET) {
        throw corrupt(file, `'${group}/${name}' is not a dataset.`);
      }
      return reader.dataset(found.path, `${key}/vars/${name}`);
    });
}

/**
 * The file's layers under the model's layer names, matched by Keras 3's keys. Every layer of the
 * model with weights must be in the file and every layer of the file in the model, as in Keras.
 */
export function entriesByModelKeys(
  model: tf.LayersModel,
  entries: readonly Keras3Entry[],
  source: string,
): StoredLayer[] {
  const keys = modelKeys(model);
  const layers: StoredLayer[] = [];
  for (const entry of entries) {
    if (entry.weights.length === 0) continue;
    const layer = keys.get(entry.key);
    if (!layer) {
      throw new XferError(
        'WEIGHTS_MISMATCH',
        `the weights in ${source} do not fit the model: the file has weights for '${entry.key}', which this model does not have (Keras 3 files name layers by class and position: ${[...keys.keys()].slice(0, 6).join(', ')}...). A '.keras' archive carries the real layer names and loads by name.`,
        { source, fileLayer: entry.key },
      );
    }
    layers.push({ name: layer.name, weights: entry.weights });
  }
  // Keras 3's load_weights fails on a layer that gets no variables; so does this.
  const covered = new Set(entries.filter((e) => e.weights.length > 0).map((e) => e.key));
  for (const [key, layer] of keys) {
    if (!isContainer(layer) && layer.weights.length > 0 && !covered.has(key)) {
      throw new XferError(
        'WEIGHTS_MISMATCH',
        `the weights in ${source} do not fit the model: its layer '${layer.name}' (Keras 3 key '${key}') has ${layer.weights.length} weight(s), but the file has none for it${covered.size === 0 ? ' (the file holds no layer weights at all)' : ''}.`,
        { source, modelLayer: layer.name, key },
      );
    }
  }
  return layers;
}

/** The file's layers under their real names, from a `.keras` archive's config. */
export function entriesByConfig(
  entries: readonly Keras3Entry[],
  names: ReadonlyMap<string, string>,
  source: string,
): StoredLayer[] {
  return entries
    .filter((entry) => entry.weights.length > 0)
    .map((entry) => {
      const name = names.get(entry.key);
      if (name === undefined) {
        throw new XferError(
          'CORRUPT_FILE',
          `${source}: the weights file has '${entry.key}', which config.json does not describe.`,
          { file: source, key: entry.key },
        );
      }
      return { name, weights: entry.weights };
    });
}

/**
 * Keras's legacy HDF5 weight layout, read and written through h5wasm (HDF5's C library in wasm; its
 * Node build opens real paths). The layout is what `save_weights_to_hdf5_group` writes, in Keras 2
 * (`hdf5_format.py`) and Keras 3 (`legacy/saving/legacy_h5_format.py`) alike:
 *
 * - on the root (or on `/model_weights` for a whole `model.save('x.h5')`): attribute `layer_names`
 *   (fixed-length byte strings, split into `layer_names0`, `layer_names1`... when over 64512 bytes),
 *   `backend` and `keras_version`;
 * - one group per layer with attribute `weight_names` (`block1_conv1/kernel:0`...; an empty float
 *   array for a layer without weights), and each weight as a dataset at that path inside the group,
 *   so `block1_conv1/block1_conv1/kernel:0`.
 *
 * Links are never followed: a soft or external link anywhere on a path is refused, so a file cannot
 * make xfer read another file. Datasets are data only: a virtual dataset (its values live in other
 * files) is refused from its metadata; external storage (HDF5's external file list, raw values in
 * another file) is stopped at the file system, where HDF5 may open nothing but the weight file itself
 * while it is read (see `withConfinedFiles`); and a dataset that declares more bytes than the file
 * could hold (a shape bomb) is refused before anything is allocated.
 */
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import type { Dataset, File, Group } from 'h5wasm/node';
import { XferError } from '../errors.js';
import type { StoredLayer, StoredWeight, WeightValues } from './stored.js';

/** HDF5's limit on an object header, which bounds one attribute; Keras splits lists above it. */
const HDF5_OBJECT_HEADER_LIMIT = 64512;
/** Datasets above this many bytes are read in slices along the first axis, to bound wasm memory. */
const SLICE_BYTES = 64 * 1024 * 1024;
/**
 * How many times its stored size a filtered (compressed) dataset may expand to. Deflate's best case
 * is about 1032:1 (a 258-byte match in under 2 bits); more than that is not compressed data.
 */
export const MAX_H5_COMPRESSION_RATIO = 1032;
/** HDF5's file signature; it sits at 0, 512, 1024, 2048... (after an optional user block). */
const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

// H5G object types as h5wasm's get_type returns them.
export const H5G_GROUP = 0;
export const H5G_DATASET = 1;
// H5T classes in h5wasm metadata.
const H5T_INTEGER = 0;
const H5T_FLOAT = 1;

type H5wasm = typeof import('h5wasm/node');
let lib: H5wasm | undefined;
let ready: Promise<void> | undefined;

/**
 * Loads h5wasm once, on first use: importing it starts compiling HDF5's wasm, which programs that
 * never touch an .h5 file should not pay for.
 */
export function h5Ready(): Promise<void> {
  ready ??= import('h5wasm/node').then(async (loaded) => {
    await loaded.ready;
    lib = loaded;
  });
  return ready;
}

/** The loaded h5wasm; callers have awaited `h5Ready()`. */
export function hdf5(): H5wasm {
  if (!lib) throw new Error('h5wasm is not loaded: await h5Ready() first');
  return lib;
}

/** The first line of an HDF5 error stack that says what failed, e.g. "unable to open file". */
export function hdf5Reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const minor = [...text.matchAll(/minor: (.+)/g)].map((m) => m[1]!.trim());
  const first = /#000: .*?\(\): (.+)/.exec(text)?.[1]?.trim();
  const reasons = [first, minor[minor.length - 1]].filter((r): r is string => Boolean(r));
  return reasons.length > 0 ? [...new Set(reasons)].join(': ') : text.split('\n')[0]!;
}

let throwingDepth = 0;

/** The slice of emscripten's FS object that the confinement wraps. */
interface EmscriptenFs {
  open: (path: unknown, flags?: unknown, mode?: unknown) => unknown;
  ErrnoError: new (errno: number) => Error;
}

/** Files HDF5 may open while confined (resolved paths), and the paths it was refused. */
const confinedTo = new Set<string>();
const refusedOpens: string[] = [];
// emscripten's errno numbering (wasi's): EACCES is 2.
const EMSCRIPTEN_EACCES = 2;
// open(2) flags as emscripten passes them; h5wasm's error handler makes scratch files with tmpfile().
const O_CREAT = 0o100;
const O_EXCL = 0o200;

/**
 * Runs `work` with HDF5 allowed to open `file` and nothing else that exists: h5wasm's Node build
 * reaches the real file system (NODERAWFS), so HDF5's external storage, virtual datasets and external
 * links would otherwise read any file a weight file names. Opens of other paths fail with EACCES and
 * are recorded; `takeRefusedOpens()` reports them. New scratch files (O_CREAT|O_EXCL, which cannot
 * open an existing file) stay allowed: h5wasm's throwing error handler writes its stack to one.
 * Synchronous, like every HDF5 call, so nothing else runs while the wrapper is in place.
 */
export function withConfinedFiles<T>(file: string, work: () => T): T {
  const fs = hdf5().Module.FS as unknown as EmscriptenFs;
  const resolved = path.resolve(file);
  const outermost = confinedTo.size === 0;
  const added = !confinedTo.has(resolved);
  const original = fs.open;
  if (added) confinedTo.add(resolved);
  if (outermost) {
    refusedOpens.length = 0;
    fs.open = function confinedOpen(this: unknown, target, flags, mode) {
      const numeric = typeof flags === 'number' ? flags : 0;
      const scratch = (numeric & O_CREAT) !== 0 && (numeric & O_EXCL) !== 0;
      if (typeof target === 'string' && !scratch && !confinedTo.has(path.resolve(target))) {
        refusedOpens.push(target);
        throw new fs.ErrnoError(EMSCRIPTEN_EACCES);
      }
      return original.call(this, target, flags, mode);
    };
  }
  try {
    return work();
  } finally {
    if (added) confinedTo.delete(resolved);
    if (outermost) fs.open = original;
  }
}

/** The paths HDF5 tried and failed to open under `withConfinedFiles` since the last call. */
export function takeRefusedOpens(): string[] {
  return refusedOpens.splice(0, refusedOpens.length);
}

/**
 * Runs `work` with HDF5 errors thrown as exceptions instead of printed (h5wasm's default prints the
 * error stack and carries on). Synchronous on purpose: no other HDF5 call can interleave. Nests:
 * only the outermost call switches the handler back.
 */
export function withHdf5Errors<T>(work: () => T): T {
  if (throwingDepth++ === 0) hdf5().Module.activate_throwing_error_handler();
  try {
    return work();
  } finally {
    if (--throwingDepth === 0) hdf5().Module.deactivate_throwing_error_handler();
  }
}

/** True when the file carries HDF5's signature at one of the offsets HDF5 allows. */
export async function isHdf5File(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const probe = Buffer.alloc(HDF5_SIGNATURE.length);
    for (let offset = 0; offset + probe.length <= size; offset = offset === 0 ? 512 : offset * 2) {
      const { bytesRead } = await handle.read(probe, 0, probe.length, offset);
      if (bytesRead === probe.length && probe.equals(HDF5_SIGNATURE)) return true;
    }
    return false;
  } finally {
    await handle.close();
  }
}

export function corrupt(
  file: string,
  what: string,
  details: Record<string, unknown> = {},
): XferError {
  return new XferError('CORRUPT_FILE', `${file} is not a readable Keras weight file: ${what}`, {
    file,
    ...details,
  });
}

/** Reads one HDF5 file without ever following a link, caching group listings. */
export class SafeReader {
  private readonly children = new Map<string, Set<string>>();
  /** The file's size on disk: every dataset's values must fit in it (times the compression bound). */
  private readonly fileBytes: number;
  /** Bytes declared so far by the datasets handed out, stored plainly and through filters. */
  private plainBytes = 0;
  private filteredBytes = 0;

  constructor(
    private readonly file: File,
    private readonly fileName: string,
  ) {
    this.fileBytes = statSync(path.resolve(fileName)).size;
  }

  private childNames(group: string): Set<string> {
    let names = this.children.get(group);
    if (!names) {
      names = new Set(hdf5().Module.get_names(this.file.file_id, group, false) as string[]);
      this.children.set(group, names);
    }
    return names;
  }

  /**
   * Resolves `relative` below the group `base` one component at a time, refusing soft and external
   * links before anything could traverse them. Returns the absolute path and object type, or
   * undefined when a component does not exist.
   */
  resolve(base: string, relative: string): { path: string; type: number } | undefined {
    const parts = relative.split('/').filter((p) => p !== '');
    if (parts.length === 0 || parts.some((p) => p === '.')) return undefined;
    let current = base;
    let type = H5G_GROUP;
    for (const [i, part] of parts.entries()) {
      if (type !== H5G_GROUP || !this.childNames(current).has(part)) return undefined;
      const next = current === '/' ? `/${part}` : `${current}/${part}`;
      const soft = this.file.get_link(next);
      const external = this.file.get_external_link(next) as { filename?: string };
      if (soft !== null || external.filename !== undefined) {
        const target =
          soft ?? `${external.filename}:${(external as { obj_path?: string }).obj_path}`;
        throw corrupt(
          this.fileName,
          `'${next}' is a link (to ${target}); xfer does not follow links in weight files.`,
          {
            link: next,
            target,
          },
        );
      }
      type = this.file.get_type(next);
      current = next;
      if (i < parts.length - 1 && type !== H5G_GROUP) return undefined;
    }
    return { path: current, type };
  }

  attributeNames(object: string): string[] {
    return hdf5().Module.get_attribute_names(this.file.file_id, object) as string[];
  }

  /** Keras's `load_attributes_from_hdf5_group`: the attribute, or its chunks `name0`, `name1`... */
  stringList(object: string, name: string): string[] | undefined {
    const names = new Set(this.attributeNames(object));
    const group = new (hdf5().Group)(this.file.file_id, object);
    const decode = (attr: string): string[] => {
      const value = group.get_attribute(attr, false);
      if (typeof value === 'string') return [value];
      if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
        return value as string[];
      // Keras stores an empty list as an empty float array.
      if (ArrayBuffer.isView(value) && (value as ArrayLike<number>).length === 0) return [];
      throw corrupt(this.fileName, `attribute '${attr}' of '${object}' is not a list of strings.`);
    };
    if (names.has(name)) return decode(name);
    if (!names.has(`${name}0`)) return undefined;
    const out: string[] = [];
    for (let chunk = 0; names.has(`${name}${chunk}`); chunk++)
      out.push(...decode(`${name}${chunk}`));
    return out;
  }

  scalarString(object: string, name: string): string | undefined {
    if (!this.attributeNames(object).includes(name)) return undefined;
    const value = new (hdf5().Group)(this.file.file_id, object).get_attribute(name, false);
    return typeof value === 'string' ? value : undefined;
  }

  dataset(datasetPath: string, weightName: string): StoredWeight {
    const dataset = new (hdf5().Dataset)(this.file.file_id, datasetPath);
    const meta = dataset.metadata;
    if (meta.shape === null || meta.shape === undefined) {
      throw corrupt(this.fileName, `dataset '${datasetPath}' has no shape (an empty dataspace).`);
    }
    if (meta.type !== H5T_FLOAT && meta.type !== H5T_INTEGER) {
      throw corrupt(this.fileName, `dataset '${datasetPath}' is not numeric.`);
    }
    if (meta.type === H5T_FLOAT && meta.size !== 4 && meta.size !== 8) {
      throw new XferError(
        'UNSUPPORTED',
        `${this.fileName}: dataset '${datasetPath}' holds ${meta.size * 8}-bit floats, which h5wasm cannot read; convert the file's weights to float32 (numpy's astype('float32')) and try again.`,
        { file: this.fileName, dataset: datasetPath },
      );
    }
    if (meta.virtual_sources !== undefined) {
      const sources = meta.virtual_sources.map((s) => `${s.file_name}:${s.dset_name}`);
      throw corrupt(
        this.fileName,
        `dataset '${datasetPath}' is a virtual dataset whose values live in ${sources.join(', ')}; xfer reads weights only from the file itself. Save the weights again with real datasets (h5py: f['x'][...] copies them).`,
        { dataset: datasetPath, virtualSources: sources },
      );
    }
    const shape = meta.shape.map(Number);
    this.checkDeclaredSize(dataset, datasetPath, shape, meta.size);
    const fileName = this.fileName;
    return {
      name: weightName,
      shape,
      read: () =>
        withHdf5Errors(() =>
          withConfinedFiles(fileName, () => {
            takeRefusedOpens();
            let values: WeightValues | undefined;
            let failure: unknown;
            try {
              values = readNumeric(dataset, shape, meta, fileName);
            } catch (error) {
              failure = error;
            }
            // HDF5 fills what it could not read with the fill value and may not fail at all, so a
            // refused open condemns the read whatever came back.
            const refused = takeRefusedOpens();
            if (refused.length > 0) throw outsideFile(fileName, datasetPath, refused);
            if (values === undefined) throw failure;
            return values;
          }),
        ),
    };
  }

  /**
   * A shape bomb declares terabytes in a kilobyte file; HDF5 would allocate them and fill them with
   * the fill value. Plain datasets must fit in the file; filtered ones may expand at most
   * `MAX_H5_COMPRESSION_RATIO` times the file, summed over every dataset handed out so far.
   */
  private checkDeclaredSize(
    dataset: Dataset,
    datasetPath: string,
    shape: number[],
    itemSize: number,
  ): void {
    const declared = shape.reduce((a, b) => a * b, 1) * itemSize;
    const filtered = dataset.filters.length > 0;
    if (filtered) this.filteredBytes += declared;
    else this.plainBytes += declared;
    const plainLimit = this.fileBytes;
    const filteredLimit = this.fileBytes * MAX_H5_COMPRESSION_RATIO;
    if (
      !Number.isSafeInteger(declared) ||
      this.plainBytes > plainLimit ||
      this.filteredBytes > filteredLimit
    ) {
      throw corrupt(
        this.fileName,
        `dataset '${datasetPath}' declares shape [${shape.join(', ')}] (${declared} bytes${filtered ? ', compressed' : ''}), more than a ${this.fileBytes}-byte file can hold${filtered ? ` even at the ${MAX_H5_COMPRESSION_RATIO}:1 compression bound` : ''}; the file is damaged or hostile (a shape bomb) and nothing was read from it.`,
        { dataset: datasetPath, shape, declaredBytes: declared, fileBytes: this.fileBytes },
      );
    }
  }
}

function outsideFile(file: string, dataset: string, refused: string[]): XferError {
  const targets = [...new Set(refused)].map((r) => `'${r}'`).join(', ');
  return corrupt(
    file,
    `dataset '${dataset}' tried to read ${targets}, outside the weight file (HDF5 external storage or a virtual dataset); xfer reads weights only from the file itself, so it refused. Save the weights again with ordinary datasets.`,
    { dataset, refused: [...new Set(refused)] },
  );
}

function toWeightValues(data: unknown, isFloat: boolean): WeightValues {
  if (data instanceof Float32Array) return data;
  if (data instanceof Int32Array) return data;
  if (typeof data === 'number' || typeof data === 'bigint') {
    return isFloat ? Float32Array.of(Number(data)) : Int32Array.of(Number(data));
  }
  if (ArrayBuffer.isView(data)) {
    const source = data as unknown as ArrayLike<number | bigint>;
    const out = isFloat ? new Float32Array(source.length) : new Int32Array(source.length);
    for (let i = 0; i < source.length; i++) out[i] = Number(source[i]);
    return out;
  }
  throw new Error('not a numeric array');
}

function readNumeric(
  dataset: Dataset,
  shape: number[],
  meta: { type: number; size: number; littleEndian: boolean },
  fileName: string,
): WeightValues {
  const isFloat = meta.type === H5T_FLOAT;
  const count = shape.reduce((a, b) => a * b, 1);
  try {
    if (shape.length === 0 || count * meta.size <= SLICE_BYTES) {
      return toWeightValues(dataset.value, isFloat);
    }
    const out = isFloat ? new Float32Array(count) : new Int32Array(count);
    const rowSize = count / shape[0]!;
    const rowsPerSlice = Math.max(1, Math.floor(SLICE_BYTES / (rowSize * meta.size)));
    for (let row = 0; row < shape[0]!; row += rowsPerSlice) {
      const end = Math.min(shape[0]!, row + rowsPerSlice);
      out.set(toWeightValues(dataset.slice([[row, end]]), isFloat), row * rowSize);
    }
    return out;
  } catch (error) {
    if (error instanceof XferError) throw error;
    throw corrupt(fileName, `dataset '${dataset.path}' could not be read (${hdf5Reason(error)}).`, {
      dataset: dataset.path,
    });
  }
}

/** What a Keras weight file holds, as `StoredLayer`s in `layer_names` order. */
export interface KerasH5Contents {
  /** `/` for `save_weights` files, `/model_weights` for whole-model `model.save('x.h5')` files. */
  readonly weightsRoot: string;
  readonly layers: StoredLayer[];
  readonly backend: string | undefined;
  readonly kerasVersion: string | undefined;
}

function describeForeignLayout(rootGroups: Set<string>): string {
  if (
    rootGroups.has('_layer_checkpoint_dependencies') ||
    (rootGroups.has('layers') && rootGroups.has('vars'))
  ) {
    return "it looks like a Keras 3 '.weights.h5' file, whose layout differs from the legacy one xfer reads. In Keras 3, save with model.save('model.h5') (legacy HDF5 with the weights under 'model_weights'), then load that file.";
  }
  return "it has no 'layer_names' attribute on its root or on a 'model_weights' group, so it was not written by Keras's save_weights or model.save. Save the weights from Keras with model.save_weights('weights.h5') (Keras 2) or model.save('model.h5') (Keras 3).";
}

/**
 * Opens a Keras legacy `.h5` file, hands its layers to `use` and closes it. Synchronous (call
 * `h5Ready()` first): datasets are read lazily by `StoredWeight.read()` inside `use`.
 */
export function readKerasH5<T>(file: string, use: (contents: KerasH5Contents) => T): T {
  return readConfinedH5(file, (reader, h5) => readContents(reader, h5, file), use);
}

/**
 * Opens an HDF5 weight file read-only, with HDF5 confined to it (`withConfinedFiles`) and its
 * errors thrown, gets what `read` makes of it (any failure there that is not an XferError is the
 * file's damage: CORRUPT_FILE), hands that to `use` and closes the file. Synchronous (call
 * `h5Ready()` first).
 */
export function readConfinedH5<C, T>(
  file: string,
  read: (reader: SafeReader, h5: File) => C,
  use: (contents: C) => T,
): T {
  return withHdf5Errors(() =>
    withConfinedFiles(file, () => {
      let h5: File;
      try {
        h5 = new (hdf5().File)(path.resolve(file), 'r');
      } catch (error) {
        throw corrupt(file, `HDF5 could not open it (${hdf5Reason(error)}).`);
      }
      try {
        let contents: C;
        try {
          contents = read(new SafeReader(h5, file), h5);
        } catch (error) {
          if (error instanceof XferError) throw error;
          throw corrupt(file, hdf5Reason(error));
        }
        return use(contents);
      } finally {
        h5.close();
      }
    }),
  );
}

function readContents(reader: SafeReader, h5: File, file: string): KerasH5Contents {
  let weightsRoot = '/';
  let layerNames = reader.stringList('/', 'layer_names');
  if (layerNames === undefined) {
    const modelWeights = reader.resolve('/', 'model_weights');
    if (modelWeights?.type === H5G_GROUP) {
      weightsRoot = modelWeights.path;
      layerNames = reader.stringList(weightsRoot, 'layer_names');
    }
  }
  if (layerNames === undefined) {
    const rootGroups = new Set(hdf5().Module.get_names(h5.file_id, '/', false) as string[]);
    throw new XferError(
      'CORRUPT_FILE',
      `${file} is an HDF5 file but not a Keras weight file: ${describeForeignLayout(rootGroups)}`,
      { file },
    );
  }
  const layers: StoredLayer[] = layerNames.map((layerName) => {
    const group = reader.resolve(weightsRoot, layerName);
    if (group?.type !== H5G_GROUP) {
      throw corrupt(
        file,
        `'layer_names' lists '${layerName}' but there is no group of that name.`,
        {
          layer: layerName,
        },
      );
    }
    const weightNames = reader.stringList(group.path, 'weight_names') ?? [];
    const weights = weightNames.map((weightName) => {
      const found = reader.resolve(group.path, weightName);
      if (found?.type !== H5G_DATASET) {
        throw corrupt(
          file,
          `layer '${layerName}' lists weight '${weightName}' but there is no dataset at '${group.path}/${weightName}'.`,
          { layer: layerName, weight: weightName },
        );
      }
      return reader.dataset(found.path, weightName);
    });
    return { name: layerName, weights };
  });
  return {
    weightsRoot,
    layers,
    backend: reader.scalarString(weightsRoot, 'backend'),
    kerasVersion: reader.scalarString(weightsRoot, 'keras_version'),
  };
}

export interface WeightToWrite {
  /** The dataset path inside the layer's group, e.g. `dense/kernel:0`. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly values: WeightValues;
}

export interface LayerToWrite {
  readonly name: string;
  readonly weights: readonly WeightToWrite[];
}

/**
 * Writes a list of strings as Keras does (`save_attributes_to_hdf5_group`): fixed-length strings,
 * split into `name0`, `name1`... when one attribute would pass HDF5's object header limit. An empty
 * list is an empty float64 array, as numpy makes of `[]`.
 */
function writeStringList(group: Group, name: string, values: readonly string[]): void {
  if (values.length === 0) {
    group.create_attribute(name, new Float64Array(0), [0]);
    return;
  }
  const encoder = new TextEncoder();
  // One byte more than the longest string keeps every entry null-terminated.
  const itemSize = Math.max(...values.map((v) => encoder.encode(v).length)) + 1;
  if (itemSize > HDF5_OBJECT_HEADER_LIMIT) {
    throw new XferError(
      'UNSUPPORTED',
      `cannot save attribute '${name}': one entry is longer than ${HDF5_OBJECT_HEADER_LIMIT} bytes.`,
    );
  }
  let chunks = 1;
  while (Math.ceil(values.length / chunks) * itemSize > HDF5_OBJECT_HEADER_LIMIT) chunks++;
  if (chunks === 1) {
    group.create_attribute(name, [...values], [values.length], `A${itemSize}`);
    return;
  }
  // numpy.array_split: the first (n % chunks) chunks take one extra item.
  const base = Math.floor(values.length / chunks);
  const extra = values.length % chunks;
  let start = 0;
  for (let i = 0; i < chunks; i++) {
    const size = base + (i < extra ? 1 : 0);
    const chunk = values.slice(start, start + size);
    group.create_attribute(`${name}${i}`, [...chunk], [chunk.length], `A${itemSize}`);
    start += size;
  }
}

function writeScalarString(group: Group, name: string, value: string): void {
  group.create_attribute(name, value, [], `A${new TextEncoder().encode(value).length + 1}`);
}

export interface KerasH5Attributes {
  /** Default `'tensorflow'`. */
  backend?: string;
  /**
   * Default `'2.15.0'`: the layout written is Keras 2's, and Keras 2 only checks this value to
   * convert files from Keras 1.
   */
  kerasVersion?: string;
}

/** Writes `layers` in Keras's legacy layout to `file` (a new file; callers make it atomic). */
export function writeKerasH5(
  file: string,
  layers: readonly LayerToWrite[],
  attributes: KerasH5Attributes = {},
): void {
  withHdf5Errors(() => {
    const h5 = new (hdf5().File)(path.resolve(file), 'w');
    try {
      writeStringList(
        h5,
        'layer_names',
        layers.map((l) => l.name),
      );
      writeScalarString(h5, 'backend', attributes.backend ?? 'tensorflow');
      writeScalarString(h5, 'keras_version', attributes.kerasVersion ?? '2.15.0');
      // Keras sorts groups by name "to ensure that group names are strictly growing".
      const sorted = [...layers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const layer of sorted) {
        const group = h5.create_group(layer.name);
        writeStringList(
          group,
          'weight_names',
          layer.weights.map((w) => w.name),
        );
        const made = new Set<string>();
        for (const weight of layer.weights) {
          const parts = weight.name.split('/');
          for (let i = 1; i < parts.length; i++) {
            const sub = parts.slice(0, i).join('/');
            if (!made.has(sub)) {
              group.create_group(sub);
              made.add(sub);
            }
          }
          group.create_dataset({
            name: weight.name,
            data: weight.values,
            shape: [...weight.shape],
            dtype: weight.values instanceof Int32Array ? '<i4' : '<f4',
          });
        }
      }
      // Keras 3 writes the model's own (not layer-owned) variables here; tfjs models have none.
      writeStringList(h5.create_group('top_level_model_weights'), 'weight_names', []);
    } finally {
      h5.close();
    }
  });
}

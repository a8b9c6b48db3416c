/**
 * Keras 3 model configs (what Keras 3's `to_json` and tensorflowjs's converter for Keras 3 write)
 * rewritten into the Keras 2 dialect tfjs-layers 4.x parses: `Functional` -> `Model`,
 * `batch_shape` -> `batch_input_shape`, dtype policies -> dtype names, `module` and
 * `registered_name` fields dropped, and call nodes `{args: [__keras_tensor__...], kwargs}` ->
 * `[[layer, node, tensor, {}]]`. Only an allowlist of built-in layer classes passes: a config that
 * names anything else (a Lambda, a custom class) is refused, since rebuilding it would mean running
 * code from the file.
 */
import { XferError } from '../errors.js';

/** Built-in layers tfjs rebuilds from their config alone. */
const ALLOWED_LAYERS = new Set([
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'Conv2DTranspose',
  'BatchNormalization',
  'LayerNormalization',
  'Dense',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'Softmax',
  'ZeroPadding2D',
  'Cropping2D',
  'UpSampling2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Add',
  'Subtract',
  'Multiply',
  'Average',
  'Maximum',
  'Minimum',
  'Concatenate',
  'Dropout',
  'SpatialDropout2D',
  'Flatten',
  'Reshape',
  'Permute',
  'Rescaling',
  'Functional',
  'Model',
  'Sequential',
]);

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Whether a topology is in Keras 3's dialect (tfjs would fail on it). */
export function isKeras3Topology(topology: unknown): boolean {
  const text = JSON.stringify(topology ?? null);
  return (
    text.includes('"registered_name"') ||
    text.includes('"__keras_tensor__"') ||
    text.includes('"batch_shape"') ||
    text.includes('"class_name":"Functional"')
  );
}

/** Drops Keras 3's serialization fields from nested objects and turns dtype policies into names. */
function cleanValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(cleanValue);
  if (!isObject(value)) return value;
  if (value.class_name === 'DTypePolicy' || value.class_name === 'DTypePolicyMap') {
    const name = isObject(value.config) ? value.config.name : undefined;
    return typeof name === 'string' && /^(float32|int32|bool)$/.test(name) ? name : 'float32';
  }
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'module' || key === 'registered_name' || key === 'build_config') continue;
    out[key] = cleanValue(v);
  }
  return out;
}

/** The `keras_history` triples inside a call's args, in order. */
function histories(value: unknown, out: [string, number, number][]): void {
  if (Array.isArray(value)) {
    for (const v of value) histories(v, out);
    return;
  }
  if (!isObject(value)) return;
  if (value.class_name === '__keras_tensor__' && isObject(value.config)) {
    const h = value.config.keras_history;
    if (Array.isArray(h) && typeof h[0] === 'string') {
      out.push([h[0], Number(h[1] ?? 0), Number(h[2] ?? 0)]);
    }
  }
}

function convertNodes(nodes: unknown): unknown {
  if (!Array.isArray(nodes)) return [];
  return nodes.map((node) => {
    if (!isObject(node)) return node; // already Keras 2's [[name, node, tensor, kwargs]]
    const found: [string, number, number][] = [];
    histories(node.args, found);
    return found.map(([name, n, t]) => [name, n, t, {}]);
  });
}

/** `['x', 0, 0]` or `[['x', 0, 0], ...]` -> the list form tfjs expects. */
function tripleList(value: unknown): unknown {
  return Array.isArray(value) && typeof value[0] === 'string' ? [value] : value;
}

function unsupported(source: string, className: string, name: unknown): XferError {
  const why =
    className === 'Lambda' || className === 'TFOpLambda'
      ? 'a Lambda layer is Python code, which xfer never runs'
      : 'it is not one of the built-in layers xfer rebuilds from a config';
  return new XferError(
    'UNSUPPORTED',
    `${source}: layer ${JSON.stringify(name)} is a '${className}'; ${why}. Rebuild the model in code (e.g. an xfer application builder) and load the weights by name with loadWeights.`,
    { file: source, className, layer: name },
  );
}

function rewriteModel(model: Json, source: string, depth: number): Json {
  if (depth > 16) throw new XferError('CORRUPT_FILE', `${source}: models nest too deeply.`);
  const className = model.class_name === 'Functional' ? 'Model' : model.class_name;
  const config = isObject(model.config) ? model.config : {};
  const layers = Array.isArray(config.layers) ? (config.layers as unknown[]) : [];
  let rewritten = layers.map((layer) => rewriteLayer(layer, source, depth));
  if (className === 'Sequential' && rewritten[0]?.class_name === 'InputLayer') {
    // Keras 3 lists a Sequential's InputLayer; tfjs wants its shape on the first real layer.
    const input = rewritten[0].config as Json;
    rewritten = rewritten.slice(1);
    if (rewritten[0] && isObject(rewritten[0].config)) {
      rewritten[0].config.batch_input_shape = input.batch_input_shape;
    }
  }
  const out: Json = { ...(cleanValue(config) as Json), layers: rewritten };
  if (out.input_layers !== undefined) out.input_layers = tripleList(out.input_layers);
  if (out.output_layers !== undefined) out.output_layers = tripleList(out.output_layers);
  return { class_name: className, config: out };
}

function rewriteLayer(layer: unknown, source: string, depth: number): Json {
  if (!isObject(layer) || typeof layer.class_name !== 'string') {
    throw new XferError(
      'CORRUPT_FILE',
      `${source}: a layer of the model config has no class_name.`,
      {
        file: source,
      },
    );
  }
  const config = isObject(layer.config) ? layer.config : {};
  const className = layer.class_name;
  if (!ALLOWED_LAYERS.has(className)) throw unsupported(source, className, config.name);
  let out: Json;
  if (className === 'Functional' || className === 'Model' || className === 'Sequential') {
    out = rewriteModel(layer, source, depth + 1);
  } else {
    const cleaned = cleanValue(config) as Json;
    if (cleaned.batch_shape !== undefined) {
      cleaned.batch_input_shape = cleaned.batch_shape;
      delete cleaned.batch_shape;
    }
    if (className === 'InputLayer') {
      for (const key of ['optional', 'ragged', 'input_tensor']) delete cleaned[key];
    }
    if (typeof cleaned.groups === 'number' && cleaned.groups !== 1) {
      throw new XferError(
        'UNSUPPORTED',
        `${source}: layer '${String(cleaned.name)}' is a grouped convolution (groups ${cleaned.groups}), which tfjs does not have.`,
        { file: source, layer: cleaned.name },
      );
    }
    out = { class_name: className, config: cleaned };
  }
  const name = config.name ?? layer.name;
  if (name !== undefined) out.name = name;
  if (layer.inbound_nodes !== undefined) out.inbound_nodes = convertNodes(layer.inbound_nodes);
  return out;
}

/**
 * A tfjs `modelTopology` in Keras 3's dialect, rewritten into the one tfjs-layers parses. Throws
 * `UNSUPPORTED` for any layer class outside the allowlist (Lambda, custom classes).
 */
export function rewriteKeras3Topology(topology: unknown, source: string): Json {
  if (!isObject(topology)) {
    throw new XferError('CORRUPT_FILE', `${source}: modelTopology is not an object.`, {
      file: source,
    });
  }
  const wrapped = isObject(topology.model_config);
  const model = (wrapped ? topology.model_config : topology) as Json;
  const className = model.class_name;
  if (className !== 'Functional' && className !== 'Model' && className !== 'Sequential') {
    throw unsupported(source, String(className), (model.config as Json | undefined)?.name);
  }
  const rewritten = rewriteModel(model, source, 0);
  const meta = { keras_version: '2.15.0', backend: 'tensorflow' };
  return wrapped ? { ...topology, ...meta, model_config: rewritten } : { ...rewritten, ...meta };
}

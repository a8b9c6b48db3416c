/**
 * Matching stored layers to a model's layers, Keras's way: by order (`load_weights_from_hdf5_group`)
 * or by name (`..._by_name`). Everything is checked before the first value is assigned, so a file
 * that does not fit leaves the model untouched and the error names the first layer that differs.
 */
import { XferError } from '../errors.js';
import { warn } from '../util/log.js';
import { isGroupedKernelFor } from './keras-layout.js';
import { isContainer, type Layer, legacyWeights, type ModelWeight } from './model-weights.js';
import {
  formatShape,
  type StoredLayer,
  type StoredWeight,
  shortWeightName,
  weightPath,
} from './stored.js';

export interface Assignment {
  readonly target: ModelWeight;
  readonly stored: StoredWeight;
}

type Pairing =
  | { assignments: Assignment[] }
  | { problem: string; expected: string[]; received: string[] };

function describeModelWeights(weights: readonly ModelWeight[], container: boolean): string[] {
  return weights.map(
    (w) =>
      `${container ? `${w.owner.name}/` : ''}${w.short} ${formatShape(w.variable.shape as number[])}`,
  );
}

function describeStored(weights: readonly StoredWeight[]): string[] {
  return weights.map((w) => `${w.name} ${formatShape(w.shape)}`);
}

function list(items: readonly string[], max = 6): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')}, ... (${items.length - max} more)`;
}

/**
 * Pairs a model layer's weights with a stored layer's. When the weight names agree (the same set,
 * each once) they pair by name, which also survives the order change a frozen nested model makes;
 * otherwise by position, as Keras does.
 */
function pairLayer(layer: Layer, stored: StoredLayer): Pairing {
  const expected = legacyWeights(layer);
  const container = isContainer(layer);
  const expectedDescription = describeModelWeights(expected, container);
  const storedDescription = describeStored(stored.weights);
  if (expected.length !== stored.weights.length) {
    return {
      problem: `expects ${expected.length} weight(s) (${list(expectedDescription) || 'none'}) but the file has ${stored.weights.length} (${list(storedDescription) || 'none'})`,
      expected: expectedDescription,
      received: storedDescription,
    };
  }
  const modelKey = (w: ModelWeight): string => (container ? `${w.owner.name}/${w.short}` : w.short);
  const storedKey = (w: StoredWeight): string =>
    container ? weightPath(w.name).slice(-2).join('/') : shortWeightName(w.name);
  const byKey = new Map(stored.weights.map((w) => [storedKey(w), w]));
  const modelKeys = new Set(expected.map(modelKey));
  // A grouped Conv2D's `kernel` (Keras's ConvNeXt) answers to a DepthwiseConv2D's name too.
  const lookup = (w: ModelWeight): StoredWeight | undefined =>
    byKey.get(modelKey(w)) ??
    (w.short === 'depthwise_kernel'
      ? byKey.get(modelKey(w).replace(/depthwise_kernel$/, 'kernel'))
      : undefined);
  const namesAgree =
    byKey.size === stored.weights.length &&
    modelKeys.size === expected.length &&
    expected.every((w) => lookup(w) !== undefined) &&
    new Set(expected.map(lookup)).size === expected.length;
  const assignments = expected.map((target, i) => ({
    target,
    stored: namesAgree ? lookup(target)! : stored.weights[i]!,
  }));
  for (const { target, stored: weight } of assignments) {
    const shape = target.variable.shape as number[];
    const sameShape =
      shape.length === weight.shape.length && shape.every((d, i) => d === weight.shape[i]);
    // Keras's grouped Conv2D kernel (ConvNeXt's) holds a DepthwiseConv2D's values in its order.
    if (!sameShape && !isGroupedKernelFor(target, weight.shape)) {
      const label = container ? `${target.owner.name}/${target.short}` : target.short;
      return {
        problem: `has weight '${label}' of shape ${formatShape(shape)}, but the file's '${weight.name}' has shape ${formatShape(weight.shape)}`,
        expected: [`${label} ${formatShape(shape)}`],
        received: [`${weight.name} ${formatShape(weight.shape)}`],
      };
    }
  }
  return { assignments };
}

export interface MatchContext {
  /** The file (or URL) the weights came from, for messages. */
  readonly source: string;
  readonly skipMismatch: boolean;
}

function mismatch(
  context: MatchContext,
  modelLayer: Layer | undefined,
  storedLayer: StoredLayer | undefined,
  message: string,
  extra: Record<string, unknown> = {},
): XferError {
  return new XferError(
    'WEIGHTS_MISMATCH',
    `the weights in ${context.source} do not fit the model: ${message}`,
    {
      source: context.source,
      modelLayer: modelLayer?.name,
      fileLayer: storedLayer?.name,
      ...extra,
    },
  );
}

function skipWarning(context: MatchContext, layer: Layer, problem: string): void {
  warn(
    `skipping layer '${layer.name}' while loading weights from ${context.source}: it ${problem}.`,
  );
}

/**
 * Keras's topological loading: the model's layers that have weights, in order, against the file's
 * layers that have weights, in order.
 */
export function matchByOrder(
  modelLayers: readonly Layer[],
  storedLayers: readonly StoredLayer[],
  context: MatchContext,
): Assignment[] {
  const targets = modelLayers.filter((l) => legacyWeights(l).length > 0);
  const sources = openNested(modelLayers, storedLayers).filter((l) => l.weights.length > 0);
  const assignments: Assignment[] = [];
  const common = Math.min(targets.length, sources.length);
  for (let i = 0; i < common; i++) {
    const layer = targets[i]!;
    const stored = sources[i]!;
    const pairing = pairLayer(layer, stored);
    if ('assignments' in pairing) {
      assignments.push(...pairing.assignments);
      continue;
    }
    if (context.skipMismatch) {
      skipWarning(context, layer, pairing.problem);
      continue;
    }
    const fileName = stored.name === layer.name ? '' : ` (file layer '${stored.name}')`;
    throw mismatch(
      context,
      layer,
      stored,
      `the first layer that differs is #${i + 1} with weights, '${layer.name}'${fileName}: it ${pairing.problem}.${byNameHint(targets.length, sources.length)}`,
      { index: i, expected: pairing.expected, received: pairing.received },
    );
  }
  if (targets.length > sources.length) {
    const layer = targets[common]!;
    throw mismatch(
      context,
      layer,
      undefined,
      `the model's layer #${common + 1} with weights, '${layer.name}', has no counterpart: the file has weights for ${sources.length} layer(s), the model has ${targets.length}.${byNameHint(targets.length, sources.length)}`,
      { index: common, expected: targets.length, received: sources.length },
    );
  }
  if (sources.length > targets.length) {
    const stored = sources[common]!;
    throw mismatch(
      context,
      undefined,
      stored,
      `the file's layer #${common + 1} with weights, '${stored.name}', has no counterpart: the model has ${targets.length} layer(s) with weights, the file has ${sources.length}.${byNameHint(targets.length, sources.length)}`,
      { index: common, expected: targets.length, received: sources.length },
    );
  }
  return assignments;
}

function byNameHint(modelCount: number, fileCount: number): string {
  return modelCount === fileCount
    ? ''
    : ' To load only the layers whose names match, pass { byName: true } (add skipMismatch: true to skip layers whose shapes differ).';
}

/**
 * Name -> layers, for matching by name: the model's own layers first; a layer inside a nested
 * model is found by its name when no shallower layer has that name (so a backbone's weight file
 * loads by name into a model that holds the backbone as one layer).
 */
function layerIndex(modelLayers: readonly Layer[]): Map<string, Layer[]> {
  const index = new Map<string, Layer[]>();
  let level: Layer[] = [...modelLayers];
  while (level.length > 0) {
    const claimed = new Set(index.keys());
    for (const layer of level) {
      if (claimed.has(layer.name)) continue;
      const entry = index.get(layer.name);
      if (entry) entry.push(layer);
      else index.set(layer.name, [layer]);
    }
    level = level.flatMap((layer) => (isContainer(layer) ? layer.layers : []));
  }
  return index;
}

/**
 * A stored nested model (one group holding `block1_conv1/kernel:0`, `block1_conv2/kernel:0`...)
 * split into one stored layer per inner layer, for a model that holds those layers directly.
 */
function splitNested(stored: StoredLayer): StoredLayer[] {
  const groups = new Map<string, StoredWeight[]>();
  for (const weight of stored.weights) {
    const parts = weightPath(weight.name);
    const owner = parts.length >= 2 ? parts[parts.length - 2]! : stored.name;
    const group = groups.get(owner);
    if (group) group.push(weight);
    else groups.set(owner, [weight]);
  }
  if (groups.size === 1 && groups.has(stored.name)) return [];
  return [...groups].map(([name, weights]) => ({ name, weights }));
}

/**
 * The file's nested models that the model holds as separate layers (Keras's ConvNeXt stem
 * `convnext_tiny_stem`, a Sequential of `convnext_tiny_stem_conv` and `_layernorm`, against
 * xfer's flat graph) opened into one stored layer per inner layer, in their order. A nested
 * model the model also has, by name, stays whole.
 */
function openNested(
  modelLayers: readonly Layer[],
  storedLayers: readonly StoredLayer[],
): StoredLayer[] {
  const names = new Set(modelLayers.map((l) => l.name));
  return storedLayers.flatMap((stored) => {
    if (names.has(stored.name) || stored.weights.length === 0) return [stored];
    const inner = splitNested(stored);
    return inner.length > 1 && inner.every((s) => names.has(s.name)) ? inner : [stored];
  });
}

/** Keras's by-name loading; layers of the model the file does not name keep their weights. */
export function matchByName(
  modelLayers: readonly Layer[],
  storedLayers: readonly StoredLayer[],
  context: MatchContext,
): Assignment[] {
  const index = layerIndex(modelLayers);
  const assignments: Assignment[] = [];
  let found = 0;
  for (const stored of storedLayers) {
    const candidates = index.has(stored.name)
      ? [stored]
      : splitNested(stored).filter((s) => index.has(s.name));
    for (const candidate of candidates) {
      for (const layer of index.get(candidate.name)!) {
        if (candidate.weights.length > 0) found++;
        const pairing = pairLayer(layer, candidate);
        if ('assignments' in pairing) {
          assignments.push(...pairing.assignments);
          continue;
        }
        if (context.skipMismatch) {
          skipWarning(context, layer, pairing.problem);
          continue;
        }
        throw mismatch(
          context,
          layer,
          candidate,
          `the first layer that differs is '${layer.name}': it ${pairing.problem}.`,
          {
            expected: pairing.expected,
            received: pairing.received,
          },
        );
      }
    }
  }
  const withWeights = storedLayers.filter((l) => l.weights.length > 0);
  if (found === 0 && withWeights.length > 0) {
    const modelNames = [...index.keys()];
    throw mismatch(
      context,
      undefined,
      undefined,
      `no layer of the file has the name of a layer of the model, so nothing would be loaded. File layers: ${list(withWeights.map((l) => l.name))}. Model layers: ${list(modelNames)}.`,
    );
  }
  return assignments;
}

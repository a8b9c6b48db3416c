/**
 * Keras's model summary and parameter counts, under Keras 3's trainable semantics (freezing.ts).
 *
 * The counts are Keras 3's (keras/src/utils/summary_utils.py): trainable = the model's
 * `trainableWeights` now, non-trainable = its `nonTrainableWeights`, total = their sum; each
 * weight once. BatchNormalization's moving mean and variance are always non-trainable. tfjs's own
 * `model.summary()` counts the same way until the model is compiled, then reports the weights
 * collected at compile time (as Keras 2 did) even after `trainable` changed; this one always
 * reports the current state, as Keras 3 does. Optimizer variables are not counted.
 *
 * The table is Keras 2's plain-text layout (Model: "name", a header, one row per layer, the three
 * totals with thousands separators) with Keras 3's column widths, right-aligned parameter counts,
 * `Functional` for tfjs's `Model` class and a `Sequential` model's input layer left out.
 */
import type { layers, Shape } from '@tensorflow/tfjs-layers';
import { invalidParameterError } from '../errors.js';
import { checkBoolean, checkPositiveInteger } from '../util/validate.js';
import { isContainer, isLayer, isSequential } from './layer-classes.js';

type Layer = layers.Layer;
type Model = Layer & { layers: Layer[]; nodesByDepth: Record<string, LayerNode[]> };
interface LayerNode {
  inboundLayers: Layer[];
  nodeIndices: number[];
  tensorIndices: number[];
}

/** Parameter counts of a model or layer, as Keras's `model.summary()` reports them. */
export interface ParamCounts {
  /** Every weight of the model: trainable plus non-trainable. */
  totalParams: number;
  /** Weights that `fit` updates (after the next `compile`). */
  trainableParams: number;
  /** Frozen weights, plus state such as BatchNormalization's moving mean and variance. */
  nonTrainableParams: number;
}

export interface ModelSummaryOptions {
  /**
   * Called once per line, like Keras's `print_fn`. Default: `console.log`, as `model.summary()`
   * prints. `null` prints nothing; the text is returned either way.
   */
  printFn?: ((line: string) => void) | null;
  /** Width of the table in characters. Default 88, or 108 for a graph with branches (Keras 3). */
  lineLength?: number;
  /** Adds a "Trainable" column: Y, N, or - for a layer without weights. Default false. */
  showTrainable?: boolean;
}

function checkLayer(name: string, value: unknown): Layer {
  if (!isLayer(value)) {
    throw invalidParameterError(name, 'a tfjs-layers model or layer', value);
  }
  return value;
}

function sizeOf(weights: ReadonlyArray<{ shape: Shape }>): number {
  let total = 0;
  for (const w of new Set(weights)) total += w.shape.reduce<number>((n, d) => n * (d ?? 0), 1);
  return total;
}

/**
 * Counts a model's (or layer's) parameters the way Keras's summary does: trainable,
 * non-trainable (frozen weights and BN moving statistics) and their total.
 * @example
 * backbone.trainable = false;
 * countParams(model); // { totalParams: 14715201, trainableParams: 513, nonTrainableParams: 14714688 }
 */
export function countParams(model: Layer): ParamCounts {
  const layer = checkLayer('model', model);
  const trainableParams = sizeOf(layer.trainableWeights);
  const nonTrainableParams = sizeOf(layer.nonTrainableWeights);
  return { totalParams: trainableParams + nonTrainableParams, trainableParams, nonTrainableParams };
}

const number = (n: number) => n.toLocaleString('en-US');

function formatShape(shape: Shape | Shape[]): string {
  const tuple = (s: Shape) =>
    s.length === 1
      ? `(${s[0] ?? 'None'},)`
      : `(${s.map((d) => (d === null ? 'None' : String(d))).join(', ')})`;
  if (shape.length > 0 && Array.isArray(shape[0])) {
    return `[${(shape as Shape[]).map(tuple).join(', ')}]`;
  }
  return tuple(shape as Shape);
}

function outputShapeOf(layer: Layer): string {
  try {
    return formatShape(layer.outputShape);
  } catch {
    return 'multiple'; // several inbound nodes with different shapes, as Keras prints
  }
}

function className(layer: Layer): string {
  const name = layer.getClassName();
  return name === 'Model' ? 'Functional' : name;
}

function paramCell(layer: Layer): string {
  if (!isContainer(layer) && !layer.built) return '0 (unbuilt)';
  return number(sizeOf(layer.weights));
}

function trainableCell(layer: Layer): string {
  if (layer.weights.length === 0) return '-';
  return layer.trainable ? 'Y' : 'N';
}

/** Keras's test: one node per depth, each with one inbound layer, and no shared layers. */
function isSequentialLike(model: Model): boolean {
  if (isSequential(model)) return true;
  const nodes = new Set<LayerNode>();
  for (const depthNodes of Object.values(model.nodesByDepth)) {
    if (depthNodes.length > 1) return false;
    if (depthNodes.length === 1 && depthNodes[0]!.inboundLayers.length > 1) return false;
    for (const node of depthNodes) nodes.add(node);
  }
  return model.layers.every(
    (layer) =>
      (layer.inboundNodes as unknown as LayerNode[]).filter((n) => nodes.has(n)).length <= 1,
  );
}

function connections(layer: Layer, relevant: Set<LayerNode>): string {
  const parts: string[] = [];
  for (const node of layer.inboundNodes as unknown as LayerNode[]) {
    if (!relevant.has(node)) continue;
    node.inboundLayers.forEach((inbound, i) => {
      parts.push(`${inbound.name}[${node.nodeIndices[i]}][${node.tensorIndices[i]}]`);
    });
  }
  return parts.length === 0 ? '-' : parts.join(', ');
}

interface Column {
  end: number;
  rightAligned: boolean;
}

/** Splits a cell to the column's width, breaking at a space where it can. */
function wrap(text: string, width: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > width) {
    const space = rest.lastIndexOf(' ', width);
    const cut = space > 0 ? space : width;
    pieces.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  pieces.push(rest);
  return pieces;
}

/** Text width of each column: a space before every cell and after all but the last. */
function cellWidths(columns: Column[]): number[] {
  return columns.map((column, i) => {
    const start = i === 0 ? 0 : columns[i - 1]!.end;
    return Math.max(1, column.end - start - (i === columns.length - 1 ? 1 : 2));
  });
}

/** One table row; cells too wide for their column continue on the following lines. */
function renderRow(cells: string[], columns: Column[]): string[] {
  const widths = cellWidths(columns);
  const wrapped = cells.map((cell, i) => wrap(cell, widths[i]!));
  const height = Math.max(...wrapped.map((w) => w.length));
  const lines: string[] = [];
  for (let row = 0; row < height; row++) {
    const line = columns.map((column, i) => {
      const text = wrapped[i]![row] ?? '';
      return ` ${column.rightAligned ? text.padStart(widths[i]!) : text.padEnd(widths[i]!)}`;
    });
    lines.push(line.join(' ').trimEnd());
  }
  return lines;
}

/**
 * The Keras-style summary of a model: one row per layer (name and class, output shape, parameter
 * count, and for graphs with branches the inbound layers), then the total, trainable and
 * non-trainable parameter counts. A frozen nested model is one row whose parameters all count
 * as non-trainable.
 * Prints it line by line (`console.log` unless `printFn` says otherwise) and returns it.
 * @returns the summary text, lines joined by "\n".
 * @example
 * summary(model);
 * // Model: "sequential"
 * // ...
 * // Total params: 14,715,201
 * // Trainable params: 513
 * // Non-trainable params: 14,714,688
 * const text = summary(model, { printFn: null }); // the same text, not printed
 */
export function summary(model: Layer, options: ModelSummaryOptions = {}): string {
  checkLayer('model', model);
  if (!isContainer(model)) {
    throw invalidParameterError('model', 'a tfjs-layers model (tf.sequential or tf.model)', model);
  }
  const { printFn = console.log, lineLength, showTrainable = false } = options;
  if (printFn !== null && typeof printFn !== 'function') {
    throw invalidParameterError('printFn', 'a function or null', printFn);
  }
  if (lineLength !== undefined) checkPositiveInteger('lineLength', lineLength);
  checkBoolean('showTrainable', showTrainable);

  const m = model as unknown as Model;
  const sequentialLike = isSequentialLike(m);
  const header = ['Layer (type)', 'Output Shape', 'Param #'];
  let positions = sequentialLike ? [0.45, 0.8, 1] : [0.3, 0.56, 0.74, 1];
  let width = lineLength ?? (sequentialLike ? 88 : 108);
  if (!sequentialLike) header.push('Connected to');
  if (showTrainable) {
    header.push('Trainable');
    positions = [...positions.map((p) => p * 0.9), 1];
    if (lineLength === undefined) width += 12;
  }
  const paramColumn = 2;
  const columns = positions.map((p, i) => ({
    end: Math.floor(p * width),
    rightAligned: i === paramColumn,
  }));

  const relevant = new Set(Object.values(m.nodesByDepth).flat());
  const rows = m.layers
    .filter((layer) => !(sequentialLike && layer.getClassName() === 'InputLayer'))
    .map((layer) => {
      const cells = [`${layer.name} (${className(layer)})`, outputShapeOf(layer), paramCell(layer)];
      if (!sequentialLike) cells.push(connections(layer, relevant));
      if (showTrainable) cells.push(trainableCell(layer));
      return renderRow(cells, columns);
    });

  const counts = countParams(model);
  const lines = [
    `Model: "${model.name}"`,
    '_'.repeat(width),
    ...renderRow(header, columns),
    '='.repeat(width),
    ...rows.flatMap((row, i) => (i === 0 ? row : ['_'.repeat(width), ...row])),
    '='.repeat(width),
    `Total params: ${number(counts.totalParams)}`,
    `Trainable params: ${number(counts.trainableParams)}`,
    `Non-trainable params: ${number(counts.nonTrainableParams)}`,
    '_'.repeat(width),
  ];
  if (printFn !== null) for (const line of lines) printFn(line);
  return lines.join('\n');
}

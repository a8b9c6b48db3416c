/**
 * tfjs-layers model → ONNX. The walk follows tfjs's own graph execution (`Container`'s nodes by
 * decreasing depth, as `runInternalGraph` runs them); a model used as a layer is flattened into
 * the outer graph; a `Sequential` is its chain of layers. The NHWC input is transposed once to
 * NCHW, every 4-D op runs NCHW, and the output goes back to tfjs's layout at the end.
 */
import { XferError } from '../../errors.js';
import { isContainer, isSequential } from '../layer-classes.js';
import type * as tf from '../tf.js';
import { foldBatchNorms, foldZeroPads } from './fold.js';
import { OnnxGraph } from './graph.js';
import { CONVERTERS, UnsupportedLayerError } from './layers.js';
import { ExportContext, type Shape, type Value } from './values.js';

type AnyLayer = any;

export interface ExportOnnxOptions {
  /**
   * Export the model up to and including this layer (a layer of the model or of a model nested in
   * it), e.g. a frozen backbone's last layer. Default: the whole model.
   */
  upTo?: string;
  /**
   * `[height, width]` to fix the image size at, for models whose input leaves it open
   * (`inputShape: [null, null, 3]`). Fixed sizes let 'same' padding be written out exactly.
   * Default: the model's own input size (an error if it has none).
   */
  imageSize?: [number, number];
  /** Fold BatchNormalization into the convolution before it where possible. Default true. */
  foldBatchNorm?: boolean;
}

export interface OnnxExport {
  /** The ONNX model (protobuf bytes), opset 13. */
  bytes: Uint8Array;
  /** The input's name and NHWC shape (batch `null`). */
  input: { name: string; shape: Shape };
  /** The output's name and tfjs shape (batch `null`). */
  output: { name: string; shape: Shape };
  /** How many BatchNormalization layers were folded into convolutions. */
  foldedBatchNorms: number;
}

/** Thrown when the part of the model to export contains a layer with no ONNX converter. */
export class OnnxExportError extends XferError {
  constructor(
    readonly layerName: string,
    readonly layerClass: string,
    what: string,
  ) {
    super(
      'UNSUPPORTED',
      `cannot export layer '${layerName}' (${layerClass}) to ONNX: ${what}. Supported layers: ${Object.keys(CONVERTERS).join(', ')}.`,
      { layer: layerName, className: layerClass },
    );
  }
}

interface Walk {
  ctx: ExportContext;
  upTo: string | undefined;
  found: Value | undefined;
}

/** A value that exists only because an unsupported layer produced it: an error if it is used. */
const POISON = '\u0000unsupported:';

function emitLayer(walk: Walk, layer: AnyLayer, inputs: Value[], callArgs: unknown): Value[] {
  const poisoned = inputs.find((v) => v.name.startsWith(POISON));
  let outputs: Value[];
  if (poisoned) {
    outputs = [{ ...poisoned }];
  } else if (isContainer(layer)) {
    outputs = emitModel(walk, layer, inputs);
  } else if (layer.getClassName() === 'InputLayer') {
    outputs = inputs;
  } else {
    const shapeIn = inputs.length === 1 ? inputs[0]!.shape : inputs.map((v) => v.shape);
    const outShape = layer.computeOutputShape(shapeIn) as Shape;
    const converter = CONVERTERS[layer.getClassName() as string];
    const training = (callArgs as { training?: unknown } | undefined)?.training;
    try {
      if (!converter) throw new UnsupportedLayerError(layer, 'the layer type');
      if (training === true) throw new UnsupportedLayerError(layer, 'a call with training: true');
      outputs = [converter(walk.ctx, layer, inputs, outShape)];
    } catch (error) {
      if (!(error instanceof UnsupportedLayerError)) throw error;
      outputs = [
        {
          name: `${POISON}${layer.name}:${layer.getClassName()}:${error.what}`,
          shape: outShape,
          layout: 'native',
        },
      ];
    }
  }
  if (walk.upTo !== undefined && layer.name === walk.upTo && walk.found === undefined) {
    walk.found = outputs[0];
  }
  return outputs;
}

function emitModel(walk: Walk, model: AnyLayer, inputs: Value[]): Value[] {
  if (isSequential(model)) {
    let x = inputs;
    for (const layer of model.layers) x = emitLayer(walk, layer, x, undefined);
    return x;
  }
  const tensors = new Map<number, Value>();
  model.inputs.forEach((t: AnyLayer, i: number) => {
    tensors.set(t.id, inputs[i]!);
  });
  const depths = Object.keys(model.nodesByDepth)
    .map(Number)
    .sort((a, b) => b - a);
  for (const depth of depths) {
    for (const node of model.nodesByDepth[depth]) {
      const layer = node.outboundLayer;
      if (layer.getClassName() === 'InputLayer') continue;
      const ins = (node.inputTensors as AnyLayer[]).map((t) => tensors.get(t.id));
      if (ins.some((v) => v === undefined)) continue;
      const outs = emitLayer(walk, layer, ins as Value[], node.callArgs);
      (node.outputTensors as AnyLayer[]).forEach((t, i) => {
        tensors.set(t.id, outs[i]!);
      });
    }
  }
  return model.outputs.map((t: AnyLayer) => {
    const v = tensors.get(t.id);
    if (!v) throw new Error(`output '${t.name}' of model '${model.name}' was not computed`);
    return v;
  });
}

/** The NHWC input shape to export at. */
function exportInputShape(model: tf.LayersModel, imageSize: [number, number] | undefined): Shape {
  if (model.inputs.length !== 1) {
    throw new XferError(
      'UNSUPPORTED',
      `ONNX export handles models with one input; model '${model.name}' has ${model.inputs.length}.`,
    );
  }
  const shape = [...model.inputs[0]!.shape] as Shape;
  if (shape.length !== 4) {
    // Non-image models (e.g. a head taking features) keep their shape.
    if (shape.slice(1).some((d) => d === null)) {
      throw new XferError(
        'UNSUPPORTED',
        `model '${model.name}' has an input of open shape [${shape}]; ONNX export needs its sizes.`,
      );
    }
    return shape;
  }
  const [h, w] = imageSize ?? [shape[1], shape[2]];
  if (typeof h !== 'number' || typeof w !== 'number' || shape[3] === null) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `model '${model.name}' takes images of any size (input shape [${shape.map((d) => d ?? 'null')}]); pass imageSize: [height, width] to export it at one size.`,
      { inputShape: shape },
    );
  }
  return [null, h, w, shape[3]!];
}

function findLayer(model: AnyLayer, name: string): boolean {
  for (const layer of model.layers ?? []) {
    if (layer.name === name || (isContainer(layer) && findLayer(layer, name))) return true;
  }
  return false;
}

/**
 * Exports a tfjs-layers model (or its part up to one layer) as an ONNX model that takes and gives
 * tfjs's layouts (NHWC images in). Throws `OnnxExportError` (code `UNSUPPORTED`) naming the first
 * layer, in the part exported, that has no converter.
 * @example
 * const { bytes } = exportOnnx(model, { upTo: 'block5_pool', imageSize: [224, 224] });
 * await fs.writeFile('backbone.onnx', bytes);
 */
export function exportOnnx(model: tf.LayersModel, options: ExportOnnxOptions = {}): OnnxExport {
  if (options.upTo !== undefined && !findLayer(model, options.upTo)) {
    throw new XferError(
      'UNKNOWN_NAME',
      `model '${model.name}' has no layer named '${options.upTo}' to export up to.`,
      { upTo: options.upTo },
    );
  }
  const graph = new OnnxGraph();
  const ctx = new ExportContext(graph);
  const inputShape = exportInputShape(model, options.imageSize);
  const input: Value = { name: graph.unique('input'), shape: inputShape, layout: 'native' };
  const walk: Walk = { ctx, upTo: options.upTo, found: undefined };
  const outputs = emitModel(walk, model, [input]);
  const result = walk.found ?? outputs[0]!;
  if (outputs.length !== 1 && walk.found === undefined) {
    throw new XferError(
      'UNSUPPORTED',
      `ONNX export handles models with one output; model '${model.name}' has ${outputs.length}.`,
    );
  }
  if (result.name.startsWith(POISON)) {
    const [layerName, className, what] = result.name.slice(POISON.length).split(':');
    throw new OnnxExportError(layerName!, className!, what!);
  }
  const outputName = graph.add('Identity', 'output', [ctx.native(result)]);
  graph.input = { name: input.name, dims: inputShape };
  graph.output = { name: outputName, dims: result.shape };
  graph.prune();
  const folded = options.foldBatchNorm === false ? 0 : foldBatchNorms(graph);
  foldZeroPads(graph);
  return {
    bytes: graph.encode(model.name),
    input: { name: input.name, shape: inputShape },
    output: { name: outputName, shape: result.shape },
    foldedBatchNorms: folded,
  };
}

/**
 * BatchNormalization folded into the convolution before it: an inference-mode BN is a per-channel
 * affine map, so `bn(conv(x, W) + b) = conv(x, W * s) + (b - mean) * s + beta` with
 * `s = gamma / sqrt(var + eps)`. Done only where the convolution's output feeds nothing else.
 */
import type { OnnxGraph } from './graph.js';

export function foldBatchNorms(graph: OnnxGraph): number {
  const consumers = graph.consumers();
  const producer = new Map(graph.nodes.map((n) => [n.outputs[0]!, n]));
  let folded = 0;
  const removed = new Set<unknown>();
  for (const bn of graph.nodes) {
    if (bn.op !== 'BatchNormalization') continue;
    const conv = producer.get(bn.inputs[0]!);
    if (conv?.op !== 'Conv' || consumers.get(conv.outputs[0]!) !== 1) continue;
    const w = graph.initializers.get(conv.inputs[1]!);
    const init = (i: number) =>
      graph.initializers.get(bn.inputs[i]!)?.data as Float32Array | undefined;
    const [gamma, beta, mean, variance] = [init(1), init(2), init(3), init(4)];
    if (!w || !(w.data instanceof Float32Array) || !gamma || !beta || !mean || !variance) continue;
    const channels = w.dims[0]!;
    const perChannel = w.data.length / channels;
    const epsilon =
      'float' in (bn.attributes.epsilon ?? {})
        ? (bn.attributes.epsilon as { float: number }).float
        : 1e-5;
    const oldBias = conv.inputs[2]
      ? (graph.initializers.get(conv.inputs[2])?.data as Float32Array)
      : undefined;
    const bias = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const s = gamma[c]! / Math.sqrt(variance[c]! + epsilon);
      for (let k = 0; k < perChannel; k++) w.data[c * perChannel + k]! *= s;
      bias[c] = ((oldBias?.[c] ?? 0) - mean[c]!) * s + beta[c]!;
    }
    if (conv.inputs[2]) graph.initializers.get(conv.inputs[2])!.data = bias;
    else conv.inputs[2] = graph.addInitializer(`${conv.name}_B`, [channels], bias);
    conv.outputs[0] = bn.outputs[0]!;
    removed.add(bn);
    folded++;
  }
  const kept = graph.nodes.filter((n) => !removed.has(n));
  graph.nodes.splice(0, graph.nodes.length, ...kept);
  graph.prune();
  return folded;
}

/**
 * A zero Pad (Keras's ZeroPadding2D) read only by convolutions becomes part of their own padding,
 * which convolutions treat as zeros too: one copy of the feature map less. ORT's own Pad_Fusion is
 * switched off (see ort.ts), since it also folds into MaxPool, where padding is not zero.
 */
export function foldZeroPads(graph: OnnxGraph): number {
  const readers = new Map<string, typeof graph.nodes>();
  for (const node of graph.nodes) {
    for (const input of node.inputs) readers.set(input, [...(readers.get(input) ?? []), node]);
  }
  let folded = 0;
  for (const pad of graph.nodes) {
    if (pad.op !== 'Pad' || pad.inputs.length !== 2 || pad.outputs[0] === graph.output?.name)
      continue;
    const pads = graph.initializers.get(pad.inputs[1]!)?.data;
    if (!(pads instanceof BigInt64Array) || pads.length !== 8) continue;
    const [n0, c0, top, left, n1, c1, bottom, right] = Array.from(pads, Number);
    if (n0 || c0 || n1 || c1 || [top, left, bottom, right].some((p) => p! < 0)) continue;
    const convs = readers.get(pad.outputs[0]!) ?? [];
    if (convs.length === 0 || convs.some((c) => c.op !== 'Conv' || !('pads' in c.attributes)))
      continue;
    for (const conv of convs) {
      const own = (conv.attributes.pads as { ints: number[] }).ints;
      conv.attributes.pads = {
        ints: [own[0]! + top!, own[1]! + left!, own[2]! + bottom!, own[3]! + right!],
      };
      conv.inputs[0] = pad.inputs[0]!;
    }
    folded++;
  }
  graph.prune();
  return folded;
}

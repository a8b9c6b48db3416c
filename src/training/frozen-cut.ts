/**
 * Where a model's frozen part ends, inside nested backbones too. The model's graph is flattened
 * into the leaf layers it calls, in execution order (a nested `Sequential` is its chain of layers,
 * a nested functional model its nodes by decreasing depth, as tfjs and the ONNX exporter run
 * them). The cut is the output of the last frozen step such that nothing computed before it is
 * needed after it, except that one tensor: for a chain any layer boundary, for a residual network
 * (MobileNetV2, ResNet50) only a point no skip connection crosses, e.g. a block's `_add` output.
 * The frozen part up to the cut can then run elsewhere (onnxruntime), and the rest is rebuilt as
 * a tfjs model on a new input, sharing the original layer objects and weights.
 */
import { isContainer, isSequential } from '../engine/layer-classes.js';
import * as tf from '../engine/tf.js';

type AnyLayer = any;

/** One call of a leaf layer in the flattened graph; tensors are known by keys. */
export interface Step {
  layer: AnyLayer;
  inputs: string[];
  outputs: string[];
  /** The models the layer sits in, outermost first (the flattened model excluded). */
  path: AnyLayer[];
}

/** The flattened graph of a model with one input. */
export interface Plan {
  input: string;
  steps: Step[];
  outputs: string[];
}

// Keyed by the layer count too: `Sequential.add` after a first fit changes the graph.
const plans = new WeakMap<tf.LayersModel, { layers: number; plan: Plan | null }>();

/**
 * The model's leaf-layer calls in execution order, or null for graphs the split does not handle
 * (several inputs, a node whose inputs are not computed inside the model).
 * @example
 * flattenModel(sequential([vgg16, gap, dense])).steps.map((s) => s.layer.name);
 * // ['block1_conv1', ..., 'block5_pool', 'gap', 'dense']
 */
export function flattenModel(model: tf.LayersModel): Plan | null {
  const cached = plans.get(model);
  if (cached?.layers === model.layers.length) return cached.plan;
  let plan: Plan | null = null;
  if (model.inputs.length === 1) {
    const steps: Step[] = [];
    let next = 0;
    const fresh = () => `t${next++}`;
    const visit = (layer: AnyLayer, inputs: string[], path: AnyLayer[]): string[] | null => {
      if (isContainer(layer)) return flatten(layer, inputs, [...path, layer]);
      if (layer.getClassName() === 'InputLayer') return inputs;
      const outputs = [fresh()];
      steps.push({ layer, inputs, outputs, path });
      return outputs;
    };
    const flatten = (container: AnyLayer, inputs: string[], path: AnyLayer[]): string[] | null => {
      if (isSequential(container)) {
        let x: string[] | null = inputs;
        for (const layer of container.layers) {
          x = visit(layer, x, path);
          if (x === null) return null;
        }
        return x;
      }
      if (container.inputs.length !== inputs.length) return null;
      const keys = new Map<number, string>();
      container.inputs.forEach((t: AnyLayer, i: number) => {
        keys.set(t.id, inputs[i]!);
      });
      const depths = Object.keys(container.nodesByDepth)
        .map(Number)
        .sort((a, b) => b - a);
      for (const depth of depths) {
        for (const node of container.nodesByDepth[depth]) {
          const layer = node.outboundLayer;
          if (layer.getClassName() === 'InputLayer') continue;
          const ins = (node.inputTensors as AnyLayer[]).map((t) => keys.get(t.id));
          if (ins.some((k) => k === undefined)) return null;
          const outs = visit(layer, ins as string[], path);
          if (outs === null || outs.length !== node.outputTensors.length) return null;
          (node.outputTensors as AnyLayer[]).forEach((t, i) => {
            keys.set(t.id, outs[i]!);
          });
        }
      }
      const outs = (container.outputs as AnyLayer[]).map((t) => keys.get(t.id));
      return outs.some((k) => k === undefined) ? null : (outs as string[]);
    };
    const input = fresh();
    const outputs = flatten(model, [input], []);
    plan = outputs === null ? null : { input, steps, outputs };
  }
  plans.set(model, { layers: model.layers.length, plan });
  return plan;
}

/**
 * The largest `c` such that steps `0..c-1` all satisfy `frozen` and the output of step `c-1` is
 * the only tensor computed before the cut that the steps from `c` on (or the model's outputs)
 * read; 0 when there is none. A cut at the very end (nothing left to train) does not count. The
 * cut layer must be called once and have a name no other layer in the model has, so that
 * "export up to this layer" means this cut.
 * @example
 * // MobileNetV2 with block_16 unfrozen: the cut is block_15_add's output
 * plan.steps[frozenCut(plan, isFrozen) - 1].layer.name; // 'block_15_add'
 */
export function frozenCut(plan: Plan, frozen: (layer: AnyLayer) => boolean): number {
  const { steps } = plan;
  const n = steps.length;
  const producedAt = new Map<string, number>([[plan.input, -1]]);
  steps.forEach((s, i) => {
    for (const k of s.outputs) producedAt.set(k, i);
  });
  const lastUse = new Map<string, number>();
  steps.forEach((s, i) => {
    for (const k of s.inputs) lastUse.set(k, i);
  });
  for (const k of plan.outputs) lastUse.set(k, n);
  const nameCount = new Map<string, number>();
  for (const s of steps) nameCount.set(s.layer.name, (nameCount.get(s.layer.name) ?? 0) + 1);

  let prefix = 0;
  while (prefix < n && frozen(steps[prefix]!.layer)) prefix++;
  for (let c = Math.min(prefix, n - 1); c >= 1; c--) {
    const last = steps[c - 1]!;
    if (last.outputs.length !== 1 || nameCount.get(last.layer.name) !== 1) continue;
    let live = 0;
    let onlyCut = true;
    for (const [key, at] of producedAt) {
      if (at < c && (lastUse.get(key) ?? -1) >= c) {
        live++;
        if (key !== last.outputs[0]) onlyCut = false;
      }
    }
    if (live === 1 && onlyCut) return c;
  }
  return 0;
}

/**
 * How many layers the first `c` steps cover, a model counting as one when all of it is inside:
 * `sequential([frozenVgg16, gap, dense])` cut after `gap` gives 2; cut inside VGG16 after
 * `block4_pool`, 18 (its input layer is not a step).
 */
export function coveredLayers(plan: Plan, c: number, root: AnyLayer): number {
  const inside = (s: Step, container: AnyLayer) => s.path.includes(container);
  const count = (container: AnyLayer): number => {
    let total = 0;
    for (const layer of container.layers as AnyLayer[]) {
      if (isContainer(layer)) {
        const indices = plan.steps.flatMap((s, i) => (inside(s, layer) ? [i] : []));
        if (indices.length > 0 && indices.every((i) => i < c)) total += 1;
        else if (indices.some((i) => i < c)) total += count(layer);
      } else if (plan.steps.some((s, i) => i < c && s.layer === layer)) {
        total += 1;
      }
    }
    return total;
  };
  return count(root);
}

/**
 * The steps from `c` on as a tfjs model on a new input of `shape` (batch excluded): the same
 * layer objects, called on new tensors in the original graph's order, so training it trains the
 * original model's weights.
 */
export function remainderModel(
  plan: Plan,
  c: number,
  shape: number[],
  name: string,
): tf.LayersModel {
  const input = tf.input({ shape });
  const tensors = new Map<string, tf.SymbolicTensor>([[plan.steps[c - 1]!.outputs[0]!, input]]);
  for (const step of plan.steps.slice(c)) {
    const ins = step.inputs.map((k) => tensors.get(k)!);
    const out = step.layer.apply(ins.length === 1 ? ins[0] : ins);
    const outs = Array.isArray(out) ? out : [out];
    step.outputs.forEach((k, i) => {
      tensors.set(k, outs[i] as tf.SymbolicTensor);
    });
  }
  const outputs = plan.outputs.map((k) => tensors.get(k)!);
  return tf.model({ inputs: input, outputs: outputs.length === 1 ? outputs[0]! : outputs, name });
}

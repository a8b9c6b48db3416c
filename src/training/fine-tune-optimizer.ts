/**
 * Separate learning rates for a backbone and its head (fastai's discriminative learning rates,
 * with two groups). Two inner optimizers of the same kind, each with its own rate and state,
 * behind one `tf.Optimizer`: scaling gradients would not do, because Adam and RMSprop divide the
 * scale away. `applyGradients` routes each variable's gradient by name.
 */
import * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';
import { Adam, getLearningRate, RMSprop, SGD, setLearningRate } from './optimizers.js';

type NamedTensorMap = Record<string, tf.Tensor>;
type NamedTensor = { name: string; tensor: tf.Tensor };

/** Optimizer kinds that take separate rates: Keras's names. */
export type GroupOptimizerName = 'adam' | 'sgd' | 'rmsprop';

const FACTORIES: Record<GroupOptimizerName, (lr: number) => tf.Optimizer> = {
  adam: (lr) => Adam(lr),
  sgd: (lr) => SGD(lr),
  rmsprop: (lr) => RMSprop(lr),
};

export interface GroupLearningRatesOptions {
  /** `'adam'`, `'sgd'` or `'rmsprop'`, with Keras's defaults. Default `'adam'`. */
  optimizer?: GroupOptimizerName;
  /** The head's learning rate (every variable not in the backbone). */
  learningRate: number;
  /** The backbone's learning rate. */
  backboneLearningRate: number;
}

function checkRate(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidParameterError(name, 'positive number', value);
  }
  return value;
}

/**
 * One optimizer over two groups of variables. Its `learningRate` is the head's; setting it (as
 * ReduceLROnPlateau does) keeps the ratio between the two rates. Made by `groupLearningRates`.
 * @example
 * const optimizer = groupLearningRates(backbone, { learningRate: 1e-3, backboneLearningRate: 1e-4 });
 * setLearningRate(optimizer, 5e-4); // the backbone's becomes 5e-5
 */
export class GroupOptimizer extends tf.Optimizer {
  static className = 'XferGroupOptimizer';
  readonly head: tf.Optimizer;
  readonly backbone: tf.Optimizer;
  private readonly backboneNames: ReadonlySet<string>;

  constructor(
    backboneVariableNames: Iterable<string>,
    kind: GroupOptimizerName,
    learningRate: number,
    backboneLearningRate: number,
  ) {
    super();
    this.backboneNames = new Set(backboneVariableNames);
    this.head = FACTORIES[kind](learningRate);
    this.backbone = FACTORIES[kind](backboneLearningRate);
  }

  get learningRate(): number {
    return getLearningRate(this.head)!;
  }

  setLearningRate(learningRate: number): void {
    const ratio = getLearningRate(this.backbone)! / this.learningRate;
    setLearningRate(this.head, learningRate);
    setLearningRate(this.backbone, learningRate * ratio);
  }

  /** The rate of the backbone's group. */
  get backboneLearningRate(): number {
    return getLearningRate(this.backbone)!;
  }

  override applyGradients(variableGradients: NamedTensorMap | NamedTensor[]): void {
    const entries = Array.isArray(variableGradients)
      ? variableGradients.map((g) => [g.name, g.tensor] as const)
      : Object.entries(variableGradients);
    const head: NamedTensorMap = {};
    const backbone: NamedTensorMap = {};
    for (const [name, grad] of entries)
      (this.backboneNames.has(name) ? backbone : head)[name] = grad;
    if (Object.keys(head).length > 0) this.head.applyGradients(head);
    if (Object.keys(backbone).length > 0) this.backbone.applyGradients(backbone);
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const prefix = (p: string, ws: NamedTensor[]) =>
      ws.map((w) => ({ name: `${p}/${w.name}`, tensor: w.tensor }));
    return [
      ...prefix('head', await this.head.getWeights()),
      ...prefix('backbone', await this.backbone.getWeights()),
    ];
  }

  override async setWeights(weights: NamedTensor[]): Promise<void> {
    const pick = (p: string) =>
      weights
        .filter((w) => w.name.startsWith(`${p}/`))
        .map((w) => ({ name: w.name.slice(p.length + 1), tensor: w.tensor }));
    await this.head.setWeights(pick('head'));
    await this.backbone.setWeights(pick('backbone'));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      head: this.head.getConfig(),
      backbone: this.backbone.getConfig(),
    };
  }

  override dispose(): void {
    this.head.dispose();
    this.backbone.dispose();
    super.dispose();
  }
}

/**
 * An optimizer that trains `backbone`'s variables at `backboneLearningRate` and every other
 * variable of the model at `learningRate`. Pass it to `compile`.
 * @example
 * unfreezeFrom(model, 'block5_conv1');
 * const optimizer = groupLearningRates(backbone, { learningRate: 1e-4, backboneLearningRate: 1e-5 });
 * compile(model, { optimizer, loss: 'binary_crossentropy', metrics: ['accuracy'] });
 */
export function groupLearningRates(
  backbone: tf.layers.Layer,
  options: GroupLearningRatesOptions,
): GroupOptimizer {
  const kind = options.optimizer ?? 'adam';
  if (!(kind in FACTORIES)) {
    throw invalidParameterError('optimizer', "'adam', 'sgd' or 'rmsprop'", kind);
  }
  const lr = checkRate('learningRate', options.learningRate);
  const backboneLr = checkRate('backboneLearningRate', options.backboneLearningRate);
  // tfjs-core keys gradients by the variable's own name (`tf.variableGrads`).
  const names = backbone.weights.map((w) => (w.read() as tf.Variable).name);
  return new GroupOptimizer(names, kind, lr, backboneLr);
}

/**
 * Keras's optimizer constructors with Keras's defaults, returning tfjs optimizers, and the one way
 * to read or change a tfjs optimizer's learning rate (SGD caches `-lr` in a tensor, the others
 * read their `learningRate` field on every step).
 */
import * as tf from '../engine/tf.js';
import { invalidParameterError, unknownNameError } from '../errors.js';
import { checkNonNegativeNumber } from '../util/validate.js';
import { OPTIMIZER_NAMES, toSnakeCase } from './names.js';

/** Keras's epsilon for every optimizer (tfjs's own default is the backend's, also 1e-7). */
const EPSILON = 1e-7;

function checkLearningRate(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidParameterError('learningRate', 'positive number', value);
  }
  return value;
}

/**
 * Keras's `Adam`: beta1 0.9, beta2 0.999, epsilon 1e-7.
 * @example
 * compile(model, { optimizer: Adam(1e-4), loss: 'binary_crossentropy', metrics: ['accuracy'] });
 */
export function Adam(learningRate = 0.001): tf.Optimizer {
  return tf.train.adam(checkLearningRate(learningRate), 0.9, 0.999, EPSILON);
}

/**
 * Keras's `SGD`: learning rate 0.01, no momentum by default; with `momentum > 0` tfjs's momentum
 * optimizer (`v = momentum * v + g; w -= lr * v`, the same steps as Keras's
 * `v = momentum * v - lr * g; w += v` while the learning rate is constant).
 * @example
 * compile(model, { optimizer: SGD(0.01, 0.9), loss: 'categorical_crossentropy' });
 */
export function SGD(learningRate = 0.01, momentum = 0): tf.Optimizer {
  checkLearningRate(learningRate);
  checkNonNegativeNumber('momentum', momentum);
  return momentum > 0 ? tf.train.momentum(learningRate, momentum) : tf.train.sgd(learningRate);
}

/**
 * Keras's `RMSprop`: rho 0.9, no momentum, epsilon 1e-7.
 * @example
 * compile(model, { optimizer: RMSprop(1e-5), loss: 'binary_crossentropy' });
 */
export function RMSprop(learningRate = 0.001): tf.Optimizer {
  return tf.train.rmsprop(checkLearningRate(learningRate), 0.9, 0, EPSILON);
}

const FACTORIES: Record<(typeof OPTIMIZER_NAMES)[number], () => tf.Optimizer> = {
  adam: () => Adam(),
  sgd: () => SGD(),
  rmsprop: () => RMSprop(),
  adagrad: () => tf.train.adagrad(0.001, 0.1),
  adadelta: () => tf.train.adadelta(0.001, 0.95, EPSILON),
  adamax: () => tf.train.adamax(0.001, 0.9, 0.999, EPSILON, 0),
};

/** `'adam'`, `'Adam'`, `'RMSProp'`... → a fresh optimizer with Keras's defaults. */
export function optimizerFromName(name: string): tf.Optimizer {
  const key = toSnakeCase(name).replace(/_/g, '');
  const factory = FACTORIES[key as keyof typeof FACTORIES];
  if (!factory) throw unknownNameError('optimizer', name, OPTIMIZER_NAMES);
  return factory();
}

interface WithLearningRate {
  learningRate?: number;
  setLearningRate?: (learningRate: number) => void;
}

/** The optimizer's current learning rate, or undefined for an optimizer without one. */
export function getLearningRate(optimizer: tf.Optimizer): number | undefined {
  const lr = (optimizer as unknown as WithLearningRate).learningRate;
  return typeof lr === 'number' ? lr : undefined;
}

/**
 * Changes the learning rate used from the next step on. tfjs's SGD and momentum optimizers keep
 * `-lr` in a cached scalar that only `setLearningRate` refreshes; Adam, RMSprop, Adagrad, Adadelta
 * and Adamax read `this.learningRate` in every `applyGradients`.
 */
export function setLearningRate(optimizer: tf.Optimizer, learningRate: number): void {
  const target = optimizer as unknown as WithLearningRate;
  if (typeof target.setLearningRate === 'function') target.setLearningRate(learningRate);
  else target.learningRate = learningRate;
}

/**
 * Keras's spellings and tfjs's, side by side. Users write Keras's snake_case names
 * (`'binary_crossentropy'`, `'val_loss'`) or tfjs's camelCase ones (`'binaryCrossentropy'`,
 * `'valLoss'`); both resolve to one key, and logs always carry Keras's snake_case keys.
 */

/**
 * `'valLoss'` → `'val_loss'`, `'binaryAccuracy'` → `'binary_accuracy'`, `'MSE'` → `'mse'`;
 * snake_case names pass through unchanged.
 */
export function toSnakeCase(name: string): string {
  if (name === name.toUpperCase()) return name.toLowerCase();
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Whether a metric gets better as it grows (accuracy) or as it shrinks (a loss). */
export type MetricDirection = 'up' | 'down';

export interface LossSpec {
  /** tfjs-layers' name for it, what `model.compile` accepts and serializes. */
  tfjsName: string;
}

/**
 * Keras loss names (with Keras's aliases) → tfjs-layers' loss names. Keras 3's `log_cosh` is
 * tfjs's `logcosh`.
 */
export const LOSSES: Readonly<Record<string, LossSpec>> = {
  binary_crossentropy: { tfjsName: 'binaryCrossentropy' },
  categorical_crossentropy: { tfjsName: 'categoricalCrossentropy' },
  sparse_categorical_crossentropy: { tfjsName: 'sparseCategoricalCrossentropy' },
  mean_squared_error: { tfjsName: 'meanSquaredError' },
  mse: { tfjsName: 'meanSquaredError' },
  mean_absolute_error: { tfjsName: 'meanAbsoluteError' },
  mae: { tfjsName: 'meanAbsoluteError' },
  mean_absolute_percentage_error: { tfjsName: 'meanAbsolutePercentageError' },
  mape: { tfjsName: 'meanAbsolutePercentageError' },
  mean_squared_logarithmic_error: { tfjsName: 'meanSquaredLogarithmicError' },
  msle: { tfjsName: 'meanSquaredLogarithmicError' },
  hinge: { tfjsName: 'hinge' },
  squared_hinge: { tfjsName: 'squaredHinge' },
  categorical_hinge: { tfjsName: 'categoricalHinge' },
  log_cosh: { tfjsName: 'logcosh' },
  logcosh: { tfjsName: 'logcosh' },
  kl_divergence: { tfjsName: 'kullbackLeiblerDivergence' },
  kullback_leibler_divergence: { tfjsName: 'kullbackLeiblerDivergence' },
  kld: { tfjsName: 'kullbackLeiblerDivergence' },
  poisson: { tfjsName: 'poisson' },
};

/**
 * The metric names xfer computes, with Keras's direction for each (Keras's `_direction`: 'up' for
 * the accuracies, 'down' for losses used as metrics). `accuracy` / `acc` are resolved against the
 * loss at compile time. Stateful Keras metrics (precision, recall, AUC) are left out: tfjs computes
 * them per batch, and a mean of per-batch precisions is not Keras's precision.
 */
export const METRIC_NAMES = [
  'accuracy',
  'acc',
  'binary_accuracy',
  'categorical_accuracy',
  'sparse_categorical_accuracy',
  'binary_crossentropy',
  'categorical_crossentropy',
  'sparse_categorical_crossentropy',
  'mean_squared_error',
  'mse',
  'mean_absolute_error',
  'mae',
  'mean_absolute_percentage_error',
  'mape',
] as const;

export const OPTIMIZER_NAMES = ['adam', 'sgd', 'rmsprop', 'adagrad', 'adadelta', 'adamax'] as const;

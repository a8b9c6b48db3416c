/**
 * Classification metrics from per-sample probabilities, as scikit-learn's `confusion_matrix` and
 * `precision_recall_fscore_support` define them, and the loss and accuracy as Keras computes them
 * (binary: class 1 when the sigmoid output is above 0.5; outputs clipped to [1e-7, 1 - 1e-7]
 * before the log).
 */

/** Keras's `epsilon()`, the clip applied before a cross-entropy's log. */
const EPSILON = 1e-7;

/** A model's outputs on a labelled set, one row per image, in file order. */
export interface LabelledOutputs {
  classNames: string[];
  /** One row per image: the sigmoid output ([p]) for a binary model, else the softmax row. */
  outputs: number[][];
  /** True class index per image. */
  labels: number[];
  /** Image paths, for the worst-mistakes gallery. */
  files: string[];
}

export interface ClassScores {
  className: string;
  precision: number;
  recall: number;
  f1: number;
  /** Images of this class in the set. */
  support: number;
}

export interface Mistake {
  file: string;
  trueClass: string;
  predictedClass: string;
  /** The probability the model gave its (wrong) answer. */
  confidence: number;
  /** The probability it gave the true class. */
  trueProbability: number;
}

export interface ClassificationMetrics {
  samples: number;
  loss: number;
  accuracy: number;
  /** confusion[t][p]: images of true class t predicted as p. */
  confusion: number[][];
  perClass: ClassScores[];
  /** Unweighted means over classes (scikit-learn's 'macro' average). */
  macro: { precision: number; recall: number; f1: number };
  /** The most confidently wrong images first. */
  mistakes: Mistake[];
}

/** Class probabilities of one output row: [1 - p, p] for one sigmoid output. */
export function classProbabilities(row: readonly number[]): number[] {
  return row.length === 1 ? [1 - row[0]!, row[0]!] : [...row];
}

/** The predicted class of one output row (binary: above 0.5, as Keras's binary accuracy). */
export function predictedClass(row: readonly number[]): number {
  if (row.length === 1) return row[0]! > 0.5 ? 1 : 0;
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

function crossEntropy(row: readonly number[], label: number): number {
  const clip = (p: number) => Math.min(Math.max(p, EPSILON), 1 - EPSILON);
  if (row.length === 1) {
    const p = clip(row[0]!);
    return label === 1 ? -Math.log(p) : -Math.log(1 - p);
  }
  // Keras's categorical cross-entropy rescales the row to sum to 1 before clipping.
  const sum = row.reduce((a, b) => a + b, 0);
  return -Math.log(clip(row[label]! / sum));
}

function safeDivide(a: number, b: number): number {
  // scikit-learn's zero_division=0: a class never predicted has precision 0, not NaN.
  return b === 0 ? 0 : a / b;
}

/**
 * Computes the metrics of a labelled set.
 * @example
 * const m = classificationMetrics({ classNames: ['cat', 'dog'], outputs: [[0.9], [0.2]], labels: [1, 1], files });
 * m.accuracy; // 0.5
 */
export function classificationMetrics(
  data: LabelledOutputs,
  topMistakes = 8,
): ClassificationMetrics {
  const k = data.classNames.length;
  const n = data.labels.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let lossSum = 0;
  let correct = 0;
  const mistakes: Mistake[] = [];
  for (let i = 0; i < n; i++) {
    const row = data.outputs[i]!;
    const label = data.labels[i]!;
    const predicted = predictedClass(row);
    confusion[label]![predicted]! += 1;
    lossSum += crossEntropy(row, label);
    if (predicted === label) {
      correct++;
    } else {
      const probabilities = classProbabilities(row);
      mistakes.push({
        file: data.files[i]!,
        trueClass: data.classNames[label]!,
        predictedClass: data.classNames[predicted]!,
        confidence: probabilities[predicted]!,
        trueProbability: probabilities[label]!,
      });
    }
  }
  const perClass = data.classNames.map((className, c) => {
    const tp = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((a, r) => a + r[c]!, 0);
    const precision = safeDivide(tp, predictedCount);
    const recall = safeDivide(tp, support);
    return {
      className,
      precision,
      recall,
      f1: safeDivide(2 * precision * recall, precision + recall),
      support,
    };
  });
  const mean = (key: 'precision' | 'recall' | 'f1') =>
    perClass.reduce((a, s) => a + s[key], 0) / Math.max(1, perClass.length);
  mistakes.sort((a, b) => b.confidence - a.confidence);
  return {
    samples: n,
    loss: n === 0 ? Number.NaN : lossSum / n,
    accuracy: n === 0 ? Number.NaN : correct / n,
    confusion,
    perClass,
    macro: { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') },
    mistakes: mistakes.slice(0, topMistakes),
  };
}

/**
 * For tests that interrupt a training run and resume it: the same starting weights in every run,
 * and an abort at a chosen epoch's end.
 */
import { Callback } from '../../src/training/index.js';
import { Random } from '../../src/util/random.js';

/**
 * tfjs draws initial weights from seeds taken from Math.random; a seeded Math.random while the
 * model is built gives every run the same starting point.
 */
export async function withSeededMathRandom<T>(seed: number, body: () => Promise<T>): Promise<T> {
  const original = Math.random;
  const random = new Random(seed);
  Math.random = () => random.next();
  try {
    return await body();
  } finally {
    Math.random = original;
  }
}

/** Aborts `controller` when epoch `epoch` (0-based) ends, as Ctrl-C would there. */
export class AbortAfterEpoch extends Callback {
  constructor(
    readonly controller: AbortController,
    readonly epoch: number,
  ) {
    super();
  }
  override onEpochEnd(epoch: number): void {
    if (epoch === this.epoch) this.controller.abort('a test abort');
  }
}

/**
 * Resuming a run that was interrupted in its fine-tuning stage: it skips the head-only stage,
 * restores the fine-tuning optimizer (two learning-rate groups) and ends exactly where the
 * uninterrupted run does. A run interrupted in its head-only stage goes on to fine-tune.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';
import { trainClassifier } from '../src/recipes/classifier.js';
import { DEMO_BACKBONE } from '../src/recipes/demo.js';
import { readTrainingState } from '../src/recipes/resume.js';
import { setQuiet } from '../src/util/log.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';
import { AbortAfterEpoch, withSeededMathRandom } from './helpers/resume.js';

let tmp: string;
let data: string;
before(async () => {
  setQuiet(true);
  tmp = await makeTempDir('recipes-resume-fine-tune');
  data = await makeImageFolder(path.join(tmp, 'data'), {
    splits: { train: 8, validation: 4 },
    size: 28,
  });
});
after(async () => {
  setQuiet(false);
  await fsp.rm(tmp, { recursive: true, force: true });
});

// 2 head-only epochs (0, 1), then 2 fine-tuning epochs (2, 3) of block3 and the head.
const COMMON = {
  dataDir: '',
  backbone: DEMO_BACKBONE,
  weights: null,
  epochs: 2,
  batchSize: 4,
  learningRate: 0.01,
  seed: 13,
  verbose: 0,
  report: false,
  patience: 100,
  fineTune: { blocks: 1 },
  fineTuneEpochs: 2,
  fineTuneLearningRate: 0.002,
} as const;

async function interrupted(outDir: string, afterEpoch: number): Promise<void> {
  const controller = new AbortController();
  const error = await withSeededMathRandom(5, () =>
    trainClassifier({
      ...COMMON,
      dataDir: data,
      outDir,
      signal: controller.signal,
      callbacks: [new AbortAfterEpoch(controller, afterEpoch)],
    }),
  ).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof XferError, String(error));
  assert.equal(error.code, 'INTERRUPTED');
}

async function assertSameEnd(a: string, b: string): Promise<void> {
  const x = await readTrainingState(path.join(a, 'last.ckpt'));
  const y = await readTrainingState(path.join(b, 'last.ckpt'));
  assert.equal(y.state.epochsDone, 4);
  assert.equal(y.state.fineTuneFrom, 2);
  assert.deepEqual(y.state.history, x.state.history);
  for (const [i, w] of x.modelWeights.entries()) {
    assert.deepEqual(await y.modelWeights[i]!.data(), await w.data(), `model weight ${i}`);
  }
  assert.equal(x.optimizerWeights.length, y.optimizerWeights.length);
  for (const [i, w] of x.optimizerWeights.entries()) {
    assert.deepEqual(await y.optimizerWeights[i]!.tensor.data(), await w.tensor.data(), w.name);
  }
  tf.dispose([...x.modelWeights, ...y.modelWeights]);
  tf.dispose([...x.optimizerWeights, ...y.optimizerWeights].map((w) => w.tensor));
}

test('a run interrupted while fine-tuning resumes there and ends like the uninterrupted run', async () => {
  const straight = path.join(tmp, 'straight');
  await withSeededMathRandom(5, () =>
    trainClassifier({ ...COMMON, dataDir: data, outDir: straight }),
  );
  const straightState = await readTrainingState(path.join(straight, 'last.ckpt'));
  assert.equal(straightState.state.epochsDone, 4);
  // The fine-tuning optimizer has two groups (head and backbone), each with Adam's moments.
  assert.ok(straightState.optimizerWeights.some((w) => w.name.startsWith('backbone')));
  tf.dispose(straightState.modelWeights);

  // Stopped after the first fine-tuning epoch (epoch index 2).
  const cut = path.join(tmp, 'cut-fine-tuning');
  await interrupted(cut, 2);
  const saved = await readTrainingState(path.join(cut, 'last.ckpt'));
  assert.equal(saved.state.epochsDone, 3);
  assert.equal(saved.state.fineTuneFrom, 2);
  tf.dispose(saved.modelWeights);

  // A fresh build (other random weights): the state must replace them all.
  const resumed = await trainClassifier({ ...COMMON, dataDir: data, outDir: cut, resume: true });
  assert.equal(resumed.epochSeconds.length, 4);
  assert.equal(resumed.headOnlyTest, null, 'the head-only model is gone once fine-tuning ran');
  await assertSameEnd(straight, cut);

  // Stopped in the head-only stage: the resumed run finishes it, then fine-tunes.
  const early = path.join(tmp, 'cut-head');
  await interrupted(early, 0);
  assert.equal(
    (await readTrainingState(path.join(early, 'last.ckpt'))).state.fineTuneFrom,
    undefined,
  );
  await trainClassifier({ ...COMMON, dataDir: data, outDir: early, resume: true });
  await assertSameEnd(straight, early);
});

test('resuming a fine-tuning run without its fine-tuning settings says what to do', async () => {
  const cut = path.join(tmp, 'cut-no-settings');
  await interrupted(cut, 2);
  const { fineTune: _, ...withoutFineTune } = COMMON;
  await assert.rejects(
    trainClassifier({ ...withoutFineTune, dataDir: data, outDir: cut, resume: true }),
    (e: unknown) =>
      e instanceof XferError &&
      e.code === 'INVALID_ARGUMENT' &&
      /was fine-tuning \(from epoch 3\).*xfer train --resume/.test(e.message),
  );
});

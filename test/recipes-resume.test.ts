/**
 * Resumable training in the library: a run aborted after its first epoch and resumed ends with
 * exactly the weights, optimizer state and history of the same run left uninterrupted (same
 * initial weights, same data order and augmentation, Adam's moments carried over). And the state
 * file refuses to load when it is damaged.
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
import { removeStaleTempFiles } from '../src/recipes/run-folder.js';
import { Callback } from '../src/training/index.js';
import { setQuiet } from '../src/util/log.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';
import { AbortAfterEpoch, withSeededMathRandom } from './helpers/resume.js';

let tmp: string;
let data: string;
before(async () => {
  setQuiet(true);
  tmp = await makeTempDir('recipes-resume');
  data = await makeImageFolder(path.join(tmp, 'data'), {
    splits: { train: 8, validation: 4 },
    size: 28,
  });
});
after(async () => {
  setQuiet(false);
  await fsp.rm(tmp, { recursive: true, force: true });
});

const COMMON = {
  dataDir: '',
  backbone: DEMO_BACKBONE,
  weights: null,
  epochs: 3,
  batchSize: 4,
  augment: true,
  learningRate: 0.01,
  seed: 11,
  verbose: 0,
  report: false,
} as const;

test('an aborted and resumed run ends exactly where the uninterrupted run does', async () => {
  const straight = path.join(tmp, 'straight');
  await withSeededMathRandom(5, () =>
    trainClassifier({ ...COMMON, dataDir: data, outDir: straight }),
  );

  const cut = path.join(tmp, 'cut');
  const controller = new AbortController();
  const error = await withSeededMathRandom(5, () =>
    trainClassifier({
      ...COMMON,
      dataDir: data,
      outDir: cut,
      signal: controller.signal,
      callbacks: [new AbortAfterEpoch(controller, 0)],
    }),
  ).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof XferError, String(error));
  assert.equal(error.code, 'INTERRUPTED');
  assert.match(
    error.message,
    /interrupted by a test abort during epoch 2 of 3; .*cut keeps the state after epoch 1; continue with: xfer train --resume/,
  );
  assert.equal((await readTrainingState(path.join(cut, 'last.ckpt'))).state.epochsDone, 1);

  // A fresh process would rebuild with other random weights: the state file must replace them all.
  const resumed = await trainClassifier({ ...COMMON, dataDir: data, outDir: cut, resume: true });
  assert.equal(resumed.epochSeconds.length, 3);

  const a = await readTrainingState(path.join(straight, 'last.ckpt'));
  const b = await readTrainingState(path.join(cut, 'last.ckpt'));
  assert.deepEqual(b.state.history, a.state.history);
  assert.equal(b.state.epochsDone, 3);
  assert.equal(a.modelWeights.length, b.modelWeights.length);
  for (const [i, w] of a.modelWeights.entries()) {
    assert.deepEqual(await b.modelWeights[i]!.data(), await w.data(), `model weight ${i}`);
  }
  assert.equal(a.optimizerWeights.length, b.optimizerWeights.length);
  for (const [i, w] of a.optimizerWeights.entries()) {
    assert.equal(b.optimizerWeights[i]!.name.replace(/_\d+/g, ''), w.name.replace(/_\d+/g, ''));
    assert.deepEqual(await b.optimizerWeights[i]!.tensor.data(), await w.tensor.data(), w.name);
  }
  tf.dispose([...a.modelWeights, ...b.modelWeights]);
  // The history file was continued, not restarted.
  const rows = (await fsp.readFile(path.join(cut, 'history.csv'), 'utf8')).trim().split('\n');
  assert.equal(rows.length, 4);
});

test('a damaged or missing state file is refused with what to do', async () => {
  const file = path.join(tmp, 'straight', 'last.ckpt');
  const bytes = await fsp.readFile(file);
  const truncated = path.join(tmp, 'truncated.ckpt');
  await fsp.writeFile(truncated, bytes.subarray(0, bytes.length - 10));
  await assert.rejects(readTrainingState(truncated), {
    code: 'CORRUPT_FILE',
    message:
      /truncated\.ckpt is not a readable xfer training state \(\d+ weight bytes, the header says \d+\)/,
  });
  const garbage = path.join(tmp, 'garbage.ckpt');
  await fsp.writeFile(garbage, 'hello world, not a checkpoint');
  await assert.rejects(readTrainingState(garbage), {
    code: 'CORRUPT_FILE',
    message: /no XFERCKPT signature/,
  });
  await assert.rejects(
    trainClassifier({
      ...COMMON,
      dataDir: data,
      outDir: path.join(tmp, 'never-ran'),
      resume: true,
    }),
    { code: 'NOT_FOUND', message: /there is no training state to resume at .*never-ran/ },
  );
});

/** Puts NaN into the head after the first epoch, as a diverging run would. */
class PoisonAfterFirstEpoch extends Callback {
  override onEpochEnd(epoch: number): void {
    if (epoch !== 0 || !this.model) return;
    const head = this.model.layers.at(-1)!;
    head.setWeights(head.getWeights().map((w) => tf.fill(w.shape, Number.NaN)));
  }
}

test('a NaN loss stops training with a clear message and keeps the last good epoch', async () => {
  const out = path.join(tmp, 'nan');
  const error = await trainClassifier({
    ...COMMON,
    dataDir: data,
    outDir: out,
    callbacks: [new PoisonAfterFirstEpoch()],
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof XferError, String(error));
  assert.match(
    error.message,
    /^training stopped in epoch 2: weight output_layer\/(kernel|bias) became NaN or infinite at batch \d+\. Lower the learning rate \(--learning-rate\) or check the images for damage; .*nan keeps the state after epoch 1; continue with: xfer train --resume .*nan --learning-rate <smaller>$/,
  );
  const { state, modelWeights } = await readTrainingState(path.join(out, 'last.ckpt'));
  assert.equal(state.epochsDone, 1);
  for (const w of modelWeights) assert.ok((await w.data()).every(Number.isFinite));
  tf.dispose(modelWeights);
});

test('temp files a killed process left are removed; those of live processes and other files stay', async () => {
  const dir = path.join(tmp, 'stale');
  await fsp.mkdir(path.join(dir, '.model.999999.0123abcd.tmp'), { recursive: true });
  await fsp.writeFile(path.join(dir, '.last.ckpt.999999.89abcdef.tmp'), 'half a checkpoint');
  await fsp.writeFile(
    path.join(dir, `.history.csv.${process.pid}.00000000.tmp`),
    'mine, in progress',
  );
  await fsp.writeFile(path.join(dir, 'notes.tmp'), 'not ours');
  await removeStaleTempFiles(dir);
  assert.deepEqual((await fsp.readdir(dir)).sort(), [
    `.history.csv.${process.pid}.00000000.tmp`,
    'notes.tmp',
  ]);
});

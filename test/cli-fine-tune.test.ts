/**
 * `xfer train --fine-tune`: epoch lines numbered on through the fine-tuning epochs, the settings
 * recorded in config.json, a weight of the unfrozen block changed and one below it unchanged,
 * and clear usage errors. Needs `npm run build` (bin/xfer.js runs dist/).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import type * as tf from '../src/engine/tf.js';
import { loadModel } from '../src/weights/index.js';
import { jsonLines, runXfer } from './helpers/cli.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

let tmp: string;
let data: string;
before(async () => {
  await initBackend();
  tmp = await makeTempDir('cli-fine-tune');
  data = await makeImageFolder(path.join(tmp, 'data'), {
    splits: { train: 8, validation: 4, test: 4 },
    size: 28,
  });
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const TRAIN = ['--backbone', 'demo_cnn', '--weights', 'none', '--batch-size', '4', '--seed', '3'];

async function weight(model: tf.LayersModel, name: string): Promise<Float32Array> {
  const w = model.weights.find((v) => v.originalName === name);
  assert.ok(w, `no weight ${name}`);
  return (await w.read().data()) as Float32Array;
}

test('--fine-tune 1 trains the last block after the head, epochs numbered on', async () => {
  const out = path.join(tmp, 'run');
  const run = await runXfer([
    'train',
    data,
    ...TRAIN,
    '--epochs',
    '2',
    '--fine-tune',
    '1',
    '--fine-tune-epochs',
    '2',
    '--fine-tune-learning-rate',
    '0.0005',
    '--out',
    out,
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const lines = jsonLines(run.stdout);
  const epochs = lines.filter((l) => 'epoch' in l);
  assert.deepEqual(
    epochs.map((l) => l.epoch),
    [1, 2, 3, 4],
  );
  for (const line of epochs) {
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy', 'seconds']) {
      assert.equal(typeof line[key], 'number', `${key} in ${JSON.stringify(line)}`);
    }
  }
  assert.equal(lines.at(-1)!.epochs, 4);
  const config = JSON.parse(await fsp.readFile(path.join(out, 'config.json'), 'utf8'));
  assert.deepEqual(config.fineTune, { blocks: 1 });
  assert.equal(config.fineTuneEpochs, 2);
  assert.equal(config.fineTuneLearningRate, 0.0005);
  assert.equal(config.trainBatchNorm, false);
  const history = (await fsp.readFile(path.join(out, 'history.csv'), 'utf8')).trim().split('\n');
  assert.equal(history.length, 1 + 4, 'a header and four epochs');
});

test('--fine-tune with a layer name unknown to the backbone lists the known ones', async () => {
  const run = await runXfer([
    'train',
    data,
    ...TRAIN,
    '--epochs',
    '1',
    '--fine-tune',
    'block9_conv1',
    '--out',
    path.join(tmp, 'bad'),
  ]);
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /block9_conv1/);
  assert.match(run.stderr, /block3_conv1/);
  assert.doesNotMatch(run.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
});

test('--fine-tune-epochs 0 is a usage error', async () => {
  const run = await runXfer([
    'train',
    data,
    ...TRAIN,
    '--fine-tune',
    'all',
    '--fine-tune-epochs',
    '0',
  ]);
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /positive integer, got '0'/);
});

test('the saved model differs from the head-only one only from the unfrozen block on', async () => {
  const headOnly = path.join(tmp, 'head');
  const tuned = path.join(tmp, 'tuned');
  const common = ['train', data, ...TRAIN, '--epochs', '1', '--patience', '100'];
  const a = await runXfer([...common, '--out', headOnly]);
  assert.equal(a.code, 0, a.stderr);
  const b = await runXfer([
    ...common,
    '--fine-tune',
    'block3_conv1',
    '--fine-tune-epochs',
    '1',
    '--out',
    tuned,
  ]);
  assert.equal(b.code, 0, b.stderr);
  const m1 = await loadModel(path.join(headOnly, 'model'));
  const m2 = await loadModel(path.join(tuned, 'model'));
  // The same seed builds the same backbone; block1 stays frozen throughout, and BN statistics
  // stay in inference mode while block3 fine-tunes.
  assert.deepEqual(
    await weight(m1, 'block1_conv1/kernel'),
    await weight(m2, 'block1_conv1/kernel'),
  );
  assert.deepEqual(
    await weight(m1, 'block3_bn/moving_mean'),
    await weight(m2, 'block3_bn/moving_mean'),
  );
  m1.dispose();
  m2.dispose();
});

import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { jsonLines, runXfer } from './helpers/cli.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

let tmp: string;
before(async () => {
  tmp = await makeTempDir('cli');
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

/** A user mistake: exactly one line on stderr, no stack trace, the given exit status. */
function assertUserError(
  result: { code: number; stderr: string },
  code: number,
  pattern: RegExp,
): void {
  assert.equal(result.code, code, result.stderr);
  const lines = result.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('xfer: error'));
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
}

test('summary --json prints Keras parameter counts', async () => {
  const result = await runXfer(['summary', 'VGG16', '--no-top', '--json']);
  assert.equal(result.code, 0, result.stderr);
  const [line] = jsonLines(result.stdout);
  assert.deepEqual(
    {
      total: line!.totalParams,
      trainable: line!.trainableParams,
      nonTrainable: line!.nonTrainableParams,
    },
    { total: 14_714_688, trainable: 14_714_688, nonTrainable: 0 },
  );
  const v2 = jsonLines((await runXfer(['summary', 'mobilenet_v2', '--json'])).stdout)[0]!;
  assert.equal(v2.totalParams, 3_538_984);
});

test('summary prints a Keras-style table and names the backend once', async () => {
  const result = await runXfer(['summary', 'mobilenet', '--no-top', '--input-shape', '128,128,3']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /Total params: 3,228,864/);
  assert.equal(result.stderr.match(/running on the tfjs '\w+' backend/g)?.length, 1);
});

test('an unknown backbone lists the known ones and suggests the closest', async () => {
  const result = await runXfer(['summary', 'vgg17']);
  assertUserError(
    result,
    2,
    /unknown backbone 'vgg17'; did you mean 'vgg16'\? Known: .*mobilenet_v2/,
  );
});

test('an input shape too small for the backbone is refused', async () => {
  const result = await runXfer(['summary', 'vgg16', '--no-top', '--input-shape', '16,16,3']);
  assertUserError(result, 2, /16/);
});

test('a malformed flag value is a usage error', async () => {
  const result = await runXfer(['summary', 'vgg16', '--input-shape', 'big']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /height,width,channels/);
});

test('train on a missing data directory fails with one line', async () => {
  const result = await runXfer([
    'train',
    path.join(tmp, 'nope'),
    '--backbone',
    'vgg16',
    '--weights',
    'none',
  ]);
  assertUserError(result, 3, /nope does not exist/);
});

test('train on a folder without validation/ says what the layout must be', async () => {
  const dir = await makeImageFolder(path.join(tmp, 'no-val'), { splits: { train: 2 } });
  const result = await runXfer(['train', dir, '--backbone', 'vgg16', '--weights', 'none']);
  assertUserError(result, 3, /no validation\/ folder/);
});

test('predict on a missing or incomplete model directory fails with one line', async () => {
  assertUserError(await runXfer(['predict', path.join(tmp, 'none'), 'x.png']), 3, /does not exist/);
  const partial = path.join(tmp, 'partial');
  await fsp.mkdir(partial, { recursive: true });
  await fsp.writeFile(path.join(partial, 'classes.json'), '["a","b"]');
  assertUserError(
    await runXfer(['predict', partial, 'x.png']),
    3,
    /incomplete: missing config.json, model\/model.json/,
  );
});

test('train --json then predict --json, end to end on a generated folder', async () => {
  const data = await makeImageFolder(path.join(tmp, 'pets'), {
    splits: { train: 12, validation: 4, test: 4 },
    size: 40,
  });
  // A corrupt file and a zero-byte file: skipped with a warning, not fatal.
  await fsp.writeFile(path.join(data, 'train', 'cats', 'broken.jpg'), 'not a jpeg');
  await fsp.writeFile(path.join(data, 'train', 'dogs', 'empty.png'), '');
  const out = path.join(tmp, 'run');
  const train = await runXfer([
    'train',
    data,
    '--backbone',
    'mobilenet_v2',
    '--weights',
    'none',
    '--image-size',
    '32',
    '--epochs',
    '2',
    '--batch-size',
    '8',
    '--seed',
    '3',
    '--out',
    out,
    '--json',
  ]);
  assert.equal(train.code, 0, train.stderr);
  assert.match(train.stderr, /broken\.jpg/);
  assert.match(train.stderr, /empty\.png/);
  const lines = jsonLines(train.stdout);
  assert.equal(lines.length, 3);
  for (const [i, line] of lines.slice(0, 2).entries()) {
    assert.equal(line.epoch, i + 1);
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy', 'seconds']) {
      assert.equal(typeof line[key], 'number', `${key} in ${JSON.stringify(line)}`);
    }
  }
  assert.ok(lines[2]!.test.accuracy >= 0 && lines[2]!.test.accuracy <= 1);
  for (const file of [
    'model/model.json',
    'classes.json',
    'config.json',
    'history.csv',
    'best.weights.h5',
  ]) {
    await fsp.access(path.join(out, file));
  }
  assert.deepEqual(JSON.parse(await fsp.readFile(path.join(out, 'classes.json'), 'utf8')), [
    'cats',
    'dogs',
  ]);

  const images = [
    path.join(data, 'test', 'cats', 'cat.0.png'),
    path.join(data, 'test', 'dogs', 'dog.1.png'),
  ];
  const predict = await runXfer(['predict', out, ...images, '--json']);
  assert.equal(predict.code, 0, predict.stderr);
  const predictions = jsonLines(predict.stdout);
  assert.equal(predictions.length, 2);
  for (const [i, p] of predictions.entries()) {
    assert.equal(p.file, images[i]);
    assert.ok(['cats', 'dogs'].includes(p.className));
    assert.equal(p.className, ['cats', 'dogs'][p.classIndex]);
    assert.ok(p.probability >= 0 && p.probability <= 1);
  }
  // Every export format from the run folder, as files another runtime can read.
  for (const [format, file] of [
    ['onnx', 'run.onnx'],
    ['tfjs', 'run-tfjs'],
    ['keras-h5', 'run.weights.h5'],
  ] as const) {
    const target = path.join(tmp, file);
    const exported = await runXfer([
      'export',
      out,
      '--format',
      format,
      '--output',
      target,
      '--json',
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(jsonLines(exported.stdout)[0]!.format, format);
    const stat = await fsp.stat(format === 'tfjs' ? path.join(target, 'model.json') : target);
    assert.ok(stat.size > 0, `${format} wrote ${target}`);
  }
  assertUserError(
    await runXfer(['export', out, '--format', 'coreml']),
    2,
    /unknown export format 'coreml'/,
  );

  // A weights file that does not fit the architecture names the first differing layer.
  const mismatch = await runXfer([
    'train',
    data,
    '--backbone',
    'vgg16',
    '--weights',
    path.join(out, 'best.weights.h5'),
    '--image-size',
    '32',
    '--epochs',
    '1',
    '--out',
    path.join(tmp, 'run2'),
  ]);
  assertUserError(mismatch, 4, /layer/);
});

test('xfer demo: the transferred model reaches 0.90 test accuracy and beats training from scratch', async () => {
  const result = await runXfer(['demo', '--json', '--out', path.join(tmp, 'demo')]);
  assert.equal(result.code, 0, result.stderr);
  const last = jsonLines(result.stdout).at(-1)!;
  assert.ok(last.transfer.testAccuracy >= 0.9, JSON.stringify(last));
  assert.ok(last.transfer.testAccuracy > last.scratch.testAccuracy, JSON.stringify(last));
  assert.ok(['pullover', 't_shirt'].includes(last.prediction.className));
});

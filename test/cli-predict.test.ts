/**
 * `xfer predict` on many files (folders, globs, unreadable files, --top, --json, --csv, progress
 * on stderr) and `xfer evaluate` on a labelled folder, with one small trained run folder.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { jsonLines, runXfer } from './helpers/cli.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

let tmp: string;
let data: string;
let run: string;
let trained: Record<string, any>;
before(async () => {
  tmp = await makeTempDir('cli-predict');
  data = await makeImageFolder(path.join(tmp, 'data'), {
    splits: { train: 8, validation: 4, test: 6 },
    size: 28,
  });
  run = path.join(tmp, 'run');
  const result = await runXfer([
    'train',
    data,
    '--backbone',
    'demo_cnn',
    '--weights',
    'none',
    '--epochs',
    '1',
    '--batch-size',
    '8',
    '--learning-rate',
    '0.01',
    '--seed',
    '1',
    '--out',
    run,
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  trained = jsonLines(result.stdout).at(-1)!;
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

test('folders and globs expand; rows come in input order; an unreadable file is reported and skipped', async () => {
  await fsp.writeFile(path.join(tmp, 'broken.png'), 'not a png');
  const result = await runXfer([
    'predict',
    run,
    path.join(data, 'test', 'cats'),
    `${data}/test/dogs/*.png`,
    path.join(tmp, 'broken.png'),
    path.join(tmp, 'nope.jpg'),
    '--json',
  ]);
  assert.equal(result.code, 4, result.stderr);
  const rows = jsonLines(result.stdout);
  assert.deepEqual(
    rows.map((r) => path.relative(data, r.file)),
    [
      ...[0, 1, 2, 3, 4, 5].map((i) => `test/cats/cat.${i}.png`),
      ...[0, 1, 2, 3, 4, 5].map((i) => `test/dogs/dog.${i}.png`),
    ],
  );
  for (const r of rows) {
    assert.equal(r.className, ['cats', 'dogs'][r.classIndex]);
    // The seed's convention for one sigmoid output: probability is P(class 1); confidence is P(className).
    assert.ok(
      Math.abs(r.confidence - (r.classIndex === 1 ? r.probability : 1 - r.probability)) < 1e-6,
    );
    assert.equal(r.top, undefined);
  }
  assert.match(result.stderr, /broken\.png/);
  assert.match(result.stderr, /nope\.jpg/);
  assert.match(
    result.stderr,
    /xfer: error: 2 of 14 image\(s\) could not be read \(see the warnings above\); the others were classified\./,
  );
  // 14 inputs, stdout not a terminal: a start and an end line of progress on stderr.
  assert.match(result.stderr, /predict: 0\/14 images\n[\s\S]*predict: 14\/14 images/);
});

test('--top lists the k most probable classes; --csv writes a header and one row per image; --quiet is quiet', async () => {
  const image = path.join(data, 'test', 'dogs', 'dog.0.png');
  const json = await runXfer(['predict', run, image, '--top', '2', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const [row] = jsonLines(json.stdout);
  assert.equal(row!.top.length, 2);
  assert.equal(row!.top[0].className, row!.className);
  assert.ok(row!.top[0].probability >= row!.top[1].probability);
  assert.ok(Math.abs(row!.top[0].probability + row!.top[1].probability - 1) < 1e-6);

  const csv = await runXfer([
    '--quiet',
    'predict',
    run,
    `${data}/test/*/*.0.png`,
    '--csv',
    '--top',
    '2',
  ]);
  assert.equal(csv.code, 0, csv.stderr);
  assert.equal(csv.stderr, '');
  const lines = csv.stdout.trim().split('\n');
  assert.equal(lines[0], 'file,class,class_index,probability,class_2,probability_2');
  assert.equal(lines.length, 3);
  assert.match(lines[1]!, /test\/cats\/cat\.0\.png,(cats|dogs),[01],0\.\d+,(cats|dogs),0\.\d+$/);

  const table = await runXfer(['predict', run, image]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /dog\.0\.png {2}(cats|dogs) \d+\.\d%\n$/);

  const both = await runXfer(['predict', run, image, '--json', '--csv']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--json and --csv cannot be used together/);
});

test('evaluate prints the test metrics training printed, and writes the same report', async () => {
  const result = await runXfer(['evaluate', run, data, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const [m] = jsonLines(result.stdout);
  assert.equal(m!.dataDir, path.join(data, 'test'));
  assert.equal(m!.samples, 12);
  assert.ok(Math.abs(m!.accuracy - trained.test.accuracy) < 1e-9);
  assert.ok(Math.abs(m!.loss - trained.test.loss) < 1e-6);
  assert.equal(
    m!.confusion.flat().reduce((a: number, b: number) => a + b, 0),
    12,
  );
  assert.equal(m!.report, path.join(run, 'eval-test', 'report.html'));
  const html = await fsp.readFile(m!.report, 'utf8');
  assert.match(html, /<h2>Training/, 'the run history is shown too');
  await fsp.access(path.join(run, 'eval-test', 'plots', 'confusion-matrix.png'));

  const text = await runXfer(['evaluate', run, path.join(data, 'validation'), '--no-report']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /validation: 8 images, loss \d\.\d{4}, accuracy \d\.\d{4}/);
  assert.match(text.stdout, /confusion matrix \(rows: true class, columns: predicted\):/);
  assert.doesNotMatch(text.stdout, /report:/);

  const wrong = await runXfer(['evaluate', run, tmp]);
  assert.equal(wrong.code, 3);
  assert.match(wrong.stderr, /has no class folders named like the model's classes \(cats, dogs\)/);
});

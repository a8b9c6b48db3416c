/**
 * `xfer models`: every registered backbone with the numbers of its spec, as a table and as JSON
 * lines. The recorded parameter counts are checked against real builds in the applications tests;
 * here, that the listing shows them for every backbone without building any.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listApplications } from '../src/applications/index.js';
import { jsonLines, runXfer } from './helpers/cli.js';

test('models --json prints one line per registered backbone, from its spec', async () => {
  const result = await runXfer(['models', '--json']);
  assert.equal(result.code, 0, result.stderr);
  const lines = jsonLines(result.stdout);
  const specs = listApplications();
  assert.equal(lines.length, specs.length);
  for (const [i, spec] of specs.entries()) {
    assert.deepEqual(lines[i], {
      model: spec.className,
      name: spec.name,
      parameters: spec.parameters?.top ?? null,
      parametersNoTop: spec.parameters?.noTop ?? null,
      defaultInputSize: spec.defaultInputSize,
      minInputSize: spec.minInputSize,
      preprocess: spec.preprocessMode,
      weights: Object.keys(spec.weightSets),
    });
    // Every backbone records Keras's counts, so the listing never needs to build one.
    const { top, noTop } = spec.parameters ?? {};
    assert.ok(
      Number.isInteger(top) && Number.isInteger(noTop),
      `${spec.name} records its parameters`,
    );
    assert.ok(top! > noTop!, spec.name);
  }
  // Listing builds nothing: the backend is never started.
  assert.doesNotMatch(result.stderr, /running on the tfjs/);

  const byName = new Map(lines.map((line) => [line.name, line]));
  // Keras's documented numbers.
  assert.deepEqual(
    {
      vgg16: byName.get('vgg16')!.parameters,
      resnet152: byName.get('resnet152')!.parameters,
      inception_v3: byName.get('inception_v3')!.parameters,
    },
    { vgg16: 138_357_544, resnet152: 60_419_944, inception_v3: 23_851_784 },
  );
  assert.equal(byName.get('xception')!.defaultInputSize, 299);
  assert.equal(byName.get('xception')!.minInputSize, 71);
  assert.equal(byName.get('densenet121')!.preprocess, 'torch');
  assert.equal(byName.get('resnet50v2')!.preprocess, 'tf');
  assert.deepEqual(byName.get('mobilenet_v2')!.weights, ['imagenet']);
});

test('models prints an aligned table with Keras-style numbers', async () => {
  const result = await runXfer(['models']);
  assert.equal(result.code, 0, result.stderr);
  const rows = result.stdout.trimEnd().split('\n');
  assert.match(rows[0]!, /^Model\s+Name\s+Parameters\s+Input\s+Preprocess\s+Weights$/);
  assert.equal(rows.length, listApplications().length + 1);
  assert.match(result.stdout, /\nVGG16 +vgg16 +138,357,544 +224x224 +caffe +imagenet\n/);
  assert.match(result.stdout, /\nInceptionV3 +inception_v3 +23,851,784 +299x299 +tf +imagenet\n/);
  assert.match(result.stdout, /\nDenseNet121 +densenet121 +8,062,504 +224x224 +torch +imagenet\n/);
  // Parameters are right-aligned: every row ends its count at the header's last column.
  const end = rows[0]!.indexOf('Parameters') + 'Parameters'.length;
  for (const row of rows.slice(1)) assert.match(row.slice(0, end), /\d$/, row);
});

test('models refuses arguments it does not know', async () => {
  const result = await runXfer(['models', '--top']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown option '--top'/);
});

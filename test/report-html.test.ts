/**
 * report.html opens from disk with nothing fetched (inline CSS and SVG, thumbnails as data URIs),
 * shows what it should, escapes names, and has a PNG beside it for every plot.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { writeReport } from '../src/report/index.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

let tmp: string;
before(async () => {
  tmp = await makeTempDir('report-html');
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

test('a report with curves, confusion matrix, scores, mistakes and counts, all inline', async () => {
  await initBackend();
  const data = await makeImageFolder(path.join(tmp, 'data'), { splits: { test: 2 }, size: 20 });
  const files = [
    path.join(data, 'test', 'cats', 'cat.0.png'),
    path.join(data, 'test', 'cats', 'cat.1.png'),
    path.join(data, 'test', 'dogs', 'dog.0.png'),
    path.join(tmp, 'missing.png'),
  ];
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [20, 20, 3], filters: 2, kernelSize: 3, trainable: false }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 1, activation: 'sigmoid' }),
    ],
  });
  const out = path.join(tmp, 'run');
  const result = await writeReport(out, {
    title: 'cats <vs> dogs',
    model,
    backbone: 'tiny',
    outputs: {
      classNames: ['<cats>', 'dogs'],
      outputs: [[0.1], [0.97], [0.8], [0.3]],
      labels: [0, 0, 1, 1],
      files,
    },
    evaluatedSplit: 'test',
    counts: [
      { split: 'train', perClass: [8, 8] },
      { split: 'test', perClass: [2, 2] },
    ],
    history: {
      loss: [0.7, 0.5],
      val_loss: [0.72, 0.6],
      accuracy: [0.5, 0.75],
      val_accuracy: [0.5, 0.5],
    },
    epochSeconds: [1.5, 1.25],
  });
  assert.equal(result.reportPath, path.join(out, 'report.html'));
  const html = await fsp.readFile(result.reportPath, 'utf8');
  // Self-contained: no scripts, stylesheets or images from anywhere.
  assert.doesNotMatch(html, /<script|<link|<iframe|url\(|(src|href)="(https?:)?\/\//i);
  assert.equal(html.match(/<svg/g)?.length, 5);
  // The two mistakes, worst first: cat.1 called dogs at 97%, then missing.png called <cats> at 70%.
  const figures = html.match(/<figure>[\s\S]*?<\/figure>/g) ?? [];
  assert.equal(figures.length, 2);
  assert.match(
    figures[0]!,
    /^<figure><img src="data:image\/png;base64,[A-Za-z0-9+/=]+"[^>]*><figcaption><b>dogs<\/b> 97\.0% \(true: &lt;cats&gt;, 3\.0%\)/,
  );
  assert.match(figures[1]!, /\(unreadable\)[\s\S]*&lt;cats&gt;<\/b> 70\.0%/);
  assert.match(html, /<h1>cats &lt;vs&gt; dogs<\/h1>/);
  assert.doesNotMatch(html, /<cats>/);
  // conv 3*3*3*2 + 2 = 56 frozen; dense 2 + 1 = 3 trainable.
  assert.match(html, /trainable parameters<\/td><td class="num">3</);
  assert.match(html, /non-trainable parameters<\/td><td class="num">56</);
  assert.match(html, /test accuracy<b>50\.0%<\/b>/);
  assert.match(
    html,
    /<td class="num"><b>total<\/b><\/td><td class="num"><b>16<\/b><\/td><td class="num"><b>4<\/b><\/td>/,
  );
  // Epoch 2's row: accuracy, loss, val_accuracy, val_loss, seconds.
  assert.match(
    html,
    /<td class="num">2<\/td><td class="num">0\.7500<\/td><td class="num">0\.5000<\/td><td class="num">0\.5000<\/td><td class="num">0\.6000<\/td><td class="num">1\.3<\/td>/,
  );

  const names = (await fsp.readdir(path.join(out, 'plots'))).sort();
  assert.deepEqual(names, [
    'accuracy.png',
    'confusion-matrix.png',
    'epoch-time.png',
    'loss.png',
    'per-class.png',
  ]);
  for (const name of names) {
    const meta = await sharp(path.join(out, 'plots', name)).metadata();
    assert.equal(meta.format, 'png');
    assert.ok(meta.width! > 200 && meta.height! > 150, `${name}: ${meta.width}x${meta.height}`);
  }
  // The confusion matrix counts are drawn: [[1, 1], [1, 1]].
  assert.deepEqual(result.metrics.confusion, [
    [1, 1],
    [1, 1],
  ]);
});

test('without a history the report has no training section', async () => {
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax' })],
  });
  const out = path.join(tmp, 'eval');
  const result = await writeReport(out, {
    title: 'evaluation',
    model,
    backbone: 'dense',
    outputs: {
      classNames: ['a', 'b', 'c'],
      outputs: [[0.8, 0.1, 0.1]],
      labels: [0],
      files: ['x.png'],
    },
    evaluatedSplit: 'holdout',
    counts: [{ split: 'holdout', perClass: [1, 0, 0] }],
  });
  const html = await fsp.readFile(result.reportPath, 'utf8');
  assert.doesNotMatch(html, /<h2>Training/);
  assert.match(html, /No mistakes on holdout/);
  assert.deepEqual((await fsp.readdir(path.join(out, 'plots'))).sort(), [
    'confusion-matrix.png',
    'per-class.png',
  ]);
});

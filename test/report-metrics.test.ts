/** The report's metrics against hand-computed values and tfjs's own loss and accuracy. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { classificationMetrics } from '../src/report/metrics.js';

const close = (a: number, b: number, tol = 1e-6) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('binary: confusion, precision / recall / F1, loss, and the worst mistakes first', () => {
  const m = classificationMetrics({
    classNames: ['cat', 'dog'],
    outputs: [[0.9], [0.2], [0.6], [0.4], [0.7]],
    labels: [1, 1, 0, 0, 1],
    files: ['a', 'b', 'c', 'd', 'e'],
  });
  // predicted (above 0.5 is dog): dog, cat, dog, cat, dog
  assert.deepEqual(m.confusion, [
    [1, 1],
    [1, 2],
  ]);
  close(m.accuracy, 3 / 5);
  // -ln(0.9) - ln(0.2) - ln(0.4) - ln(0.6) - ln(0.7), over 5
  close(m.loss, (0.1053605 + 1.6094379 + 0.9162907 + 0.5108256 + 0.3566749) / 5);
  assert.deepEqual(
    m.perClass.map((s) => [s.className, s.support]),
    [
      ['cat', 2],
      ['dog', 3],
    ],
  );
  close(m.perClass[0]!.precision, 1 / 2);
  close(m.perClass[0]!.recall, 1 / 2);
  close(m.perClass[1]!.precision, 2 / 3);
  close(m.perClass[1]!.recall, 2 / 3);
  close(m.perClass[1]!.f1, 2 / 3);
  close(m.macro.f1, (0.5 + 2 / 3) / 2);
  // b: a dog called cat with 0.8; c: a cat called dog with 0.6.
  assert.deepEqual(
    m.mistakes.map((x) => [x.file, x.trueClass, x.predictedClass]),
    [
      ['b', 'dog', 'cat'],
      ['c', 'cat', 'dog'],
    ],
  );
  close(m.mistakes[0]!.confidence, 0.8);
  close(m.mistakes[0]!.trueProbability, 0.2);
});

test('a class never predicted has precision 0, not NaN (scikit-learn zero_division=0)', () => {
  const m = classificationMetrics({
    classNames: ['a', 'b', 'c'],
    outputs: [
      [0.7, 0.2, 0.1],
      [0.6, 0.3, 0.1],
      [0.1, 0.8, 0.1],
    ],
    labels: [0, 2, 1],
    files: ['x', 'y', 'z'],
  });
  assert.deepEqual(m.confusion, [
    [1, 0, 0],
    [0, 1, 0],
    [1, 0, 0],
  ]);
  assert.deepEqual(
    m.perClass.map((s) => [s.precision, s.recall, s.f1]),
    [
      [0.5, 1, 2 / 3],
      [1, 1, 1],
      [0, 0, 0],
    ],
  );
  close(m.loss, (-Math.log(0.7) - Math.log(0.1) - Math.log(0.8)) / 3);
});

test("loss and accuracy match tfjs's binary and categorical cross-entropy and accuracy", async () => {
  await initBackend();
  const p = [0.93, 0.02, 0.51, 0.49, 0.3, 0.999];
  const y = [1, 0, 0, 1, 0, 1];
  const m = classificationMetrics({
    classNames: ['n', 'p'],
    outputs: p.map((v) => [v]),
    labels: y,
    files: p.map(String),
  });
  const bce = tf.mean(tf.metrics.binaryCrossentropy(tf.tensor1d(y), tf.tensor1d(p)));
  const acc = tf.mean(tf.metrics.binaryAccuracy(tf.tensor1d(y), tf.tensor1d(p)));
  close(m.loss, (await bce.data())[0]!, 1e-5);
  close(m.accuracy, (await acc.data())[0]!);

  const rows = [
    [0.2, 0.5, 0.3],
    [0.9, 0.05, 0.05],
    [0.1, 0.1, 0.8],
    [0.3, 0.4, 0.3],
  ];
  const labels = [1, 2, 2, 0];
  const c = classificationMetrics({
    classNames: ['a', 'b', 'c'],
    outputs: rows,
    labels,
    files: ['1', '2', '3', '4'],
  });
  const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), 3);
  const cce = tf.mean(tf.metrics.categoricalCrossentropy(oneHot, tf.tensor2d(rows)));
  const cacc = tf.mean(tf.metrics.categoricalAccuracy(oneHot, tf.tensor2d(rows)));
  close(c.loss, (await cce.data())[0]!, 1e-5);
  close(c.accuracy, (await cacc.data())[0]!);
  tf.dispose([bce, acc, oneHot, cce, cacc]);
});

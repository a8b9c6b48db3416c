import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { compiledModel } from '../src/training/compile.js';
import {
  Adam,
  compile,
  evaluate,
  fit,
  getLearningRate,
  ProgbarLogger,
  RMSprop,
  SGD,
} from '../src/training/index.js';

function model(units: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ units, inputShape: [2], activation: units === 1 ? 'sigmoid' : 'softmax' }),
    ],
  });
}

before(async () => {
  await initBackend();
});

describe('compile', () => {
  test("Keras's optimizer names, with Keras's default learning rates", () => {
    const cases: Array<[string, string, number]> = [
      ['adam', 'Adam', 0.001],
      ['Adam', 'Adam', 0.001],
      ['sgd', 'SGD', 0.01],
      ['RMSprop', 'RMSProp', 0.001],
      ['rmsprop', 'RMSProp', 0.001],
      ['adagrad', 'Adagrad', 0.001],
      ['adadelta', 'Adadelta', 0.001],
      ['adamax', 'Adamax', 0.001],
    ];
    for (const [name, className, lr] of cases) {
      const m = compile(model(1), { optimizer: name, loss: 'binary_crossentropy' });
      assert.equal(m.optimizer.getClassName(), className, name);
      assert.equal(getLearningRate(m.optimizer), lr, name);
    }
    assert.equal(compile(model(1), { loss: 'mse' }).optimizer.getClassName(), 'RMSProp');
    assert.equal(getLearningRate(Adam()), 0.001);
    assert.equal(getLearningRate(SGD()), 0.01);
    assert.equal(SGD(0.1, 0.9).getClassName(), 'Momentum');
    assert.equal(getLearningRate(RMSprop(1e-5)), 1e-5);
    assert.throws(
      () => Adam(0),
      /Expected positive number for learningRate but received 0 of type number/,
    );
  });

  test("'accuracy' follows the loss, as Keras picks it", () => {
    const pick = (units: number, loss: string, metric = 'accuracy') =>
      compiledModel(compile(model(units), { optimizer: 'adam', loss, metrics: [metric] }))
        .metrics[0]!;
    // Told apart by what they compute on one row: true class 0 (one-hot [1, 0, 0], index 0),
    // prediction [0.2, 0.7, 0.1]. Binary accuracy thresholds each unit: [0, 1, 0] vs [1, 0, 0]
    // → 1/3; categorical compares argmaxes 1 vs 0 → 0; sparse compares index 0 with argmax 1 → 0
    // but, unlike categorical, takes the index as its target.
    const oneHot = tf.tensor2d([[1, 0, 0]]);
    const index = tf.tensor2d([[0]]);
    const pred = tf.tensor2d([[0.2, 0.7, 0.1]]);
    const on = (fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, target: tf.Tensor) =>
      tf.tidy(() => tf.mean(fn(target, pred)).dataSync()[0]!);
    const binary = pick(1, 'binary_crossentropy').fn;
    assert.ok(Math.abs(on(binary, oneHot) - 1 / 3) < 1e-6);
    // binary_crossentropy on several sigmoid units (multi-label) is still binary accuracy.
    assert.ok(Math.abs(on(pick(3, 'binary_crossentropy').fn, oneHot) - 1 / 3) < 1e-6);
    assert.equal(on(pick(3, 'categorical_crossentropy').fn, oneHot), 0);
    const sparse = pick(3, 'sparse_categorical_crossentropy').fn;
    assert.equal(on(sparse, index), 0);
    assert.equal(on(sparse, tf.tensor2d([[1]])), 1);
    assert.ok(Math.abs(on(pick(1, 'mse').fn, oneHot) - 1 / 3) < 1e-6);
    tf.dispose([oneHot, index, pred]);
    // The logs key is the name written, as Keras prints it; its direction is 'up'.
    const acc = pick(3, 'categoricalCrossentropy', 'acc');
    assert.equal(acc.name, 'acc');
    assert.equal(acc.direction, 'up');
    const mse = pick(1, 'binary_crossentropy', 'mse');
    assert.equal(mse.name, 'mse');
    assert.equal(mse.direction, 'down');
    assert.equal(pick(1, 'binary_crossentropy', 'binaryAccuracy').name, 'binary_accuracy');
  });

  test('binary accuracy thresholds at 0.5, strictly above (Keras: y_pred > 0.5)', async () => {
    // One sigmoid unit with zero weights outputs exactly 0.5 for every row.
    const m = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 1,
          inputShape: [2],
          activation: 'sigmoid',
          kernelInitializer: 'zeros',
        }),
      ],
    });
    compile(m, { optimizer: 'adam', loss: 'binary_crossentropy', metrics: ['accuracy'] });
    const x = tf.ones([4, 2]);
    const y = tf.tensor2d([[0], [0], [0], [1]]);
    const result = await evaluate(m, { x, y }, { verbose: 0 });
    assert.equal(result.accuracy, 0.75);
    assert.ok(Math.abs(result.loss! - Math.log(2)) < 1e-6);
    tf.dispose([x, y]);
  });

  test('unknown names are refused with the closest known one', () => {
    assert.throws(
      () => compile(model(1), { optimizer: 'adam', loss: 'binary_crossentropyy' }),
      /unknown loss 'binary_crossentropyy'; did you mean 'binary_crossentropy'\? Known: binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy,/,
    );
    assert.throws(
      () =>
        compile(model(1), { optimizer: 'adam', loss: 'binary_crossentropy', metrics: ['acuracy'] }),
      /unknown metric 'acuracy'; did you mean 'accuracy'\? Known: accuracy, acc,/,
    );
    assert.throws(
      () => compile(model(1), { optimizer: 'adamw', loss: 'mse' }),
      /unknown optimizer 'adamw'; did you mean 'adam'\? Known: adam, sgd, rmsprop, adagrad, adadelta, adamax/,
    );
    assert.throws(
      () =>
        compile(model(1), { optimizer: 'adam', loss: 'mse', metrics: ['accuracy', 'accuracy'] }),
      /Expected distinct metric names other than 'loss' for metrics/,
    );
    assert.throws(
      () => compile({} as tf.LayersModel, { loss: 'mse' }),
      /Expected a tfjs LayersModel \(tf\.sequential \/ tf\.model\) for model/,
    );
  });

  test('a function loss and metric are used as given, named by the function', async () => {
    const m = model(1);
    function squaredError(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
      return tf.mean(tf.square(tf.sub(yTrue, yPred)), -1);
    }
    compile(m, { optimizer: 'sgd', loss: squaredError, metrics: [squaredError] });
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const y = tf.tensor2d([[1], [0]]);
    const result = await evaluate(m, { x, y }, { verbose: 0 });
    assert.deepEqual(Object.keys(result), ['loss', 'squared_error']);
    assert.equal(result.loss, result.squared_error);
    tf.dispose([x, y]);
  });
});

describe('ProgbarLogger', () => {
  test('plain lines when the stream is not a terminal: verbose 1 and 2', async () => {
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const y = tf.tensor2d([[1], [0], [1]]);
    const m = compile(model(1), {
      optimizer: 'sgd',
      loss: 'binary_crossentropy',
      metrics: ['accuracy'],
    });
    for (const verbose of [1, 2] as const) {
      let text = '';
      const stream = {
        isTTY: false,
        write: (s: string) => {
          text += s;
          return true;
        },
      } as unknown as NodeJS.WriteStream;
      await fit(
        m,
        { x, y },
        {
          epochs: 2,
          batchSize: 2,
          verbose,
          validationData: [x, y],
          callbacks: [new ProgbarLogger({ stream })],
        },
      );
      const lines = text.trimEnd().split('\n');
      assert.equal(lines.length, 4, text);
      assert.equal(lines[0], 'Epoch 1/2');
      assert.match(
        lines[1]!,
        /^2\/2 - \d+s - \d+(ms|s|us)\/step - loss: \d\.\d{4} - accuracy: \d\.\d{4} - val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}$/,
      );
      assert.equal(lines[2], 'Epoch 2/2');
    }
    const result = { text: '' };
    const stream = {
      isTTY: false,
      write: (s: string) => {
        result.text += s;
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    await evaluate(m, { x, y }, { callbacks: [new ProgbarLogger({ stream })] });
    assert.match(
      result.text,
      /^1\/1 - \d+s - \d+(ms|s|us)\/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}\n$/,
    );
    tf.dispose([x, y]);
  });
});

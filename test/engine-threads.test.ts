import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import {
  requestedWasmThreads,
  setWasmThreads,
  WASM_THREADS_ENV,
  wasmThreadCount,
  wasmThreadsSupported,
} from '../src/engine/threads.js';
import { Adam, compile, fit } from '../src/training/index.js';
import { Random } from '../src/util/random.js';

function randomValues(shape: number[], seed: number): Float32Array {
  const rng = new Random(seed);
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = rng.uniform(-1, 1);
  return values;
}

/** |a − b| ≤ 1e-5 · max(1, |b|) elementwise, and not everything zero. */
function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let largest = 0;
  for (let i = 0; i < expected.length; i++) {
    const [a, b] = [actual[i]!, expected[i]!];
    largest = Math.max(largest, Math.abs(b));
    assert.ok(
      Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)),
      `${what}[${i}]: ${a} on 2 threads vs ${b} on 1`,
    );
  }
  assert.ok(largest > 0, `${what}: all zero`);
}

const X_SHAPE = [4, 9, 9, 8];

/**
 * A conv layer, a depthwise conv and a frozen BatchNormalization (inference mode, xfer's
 * fine-tuning default) under a dense head, with weights from a seeded RNG: one Adam step on a
 * batch of 4. Returns the gradients of a conv and a depthwise conv (xfer's wasm gradient kernels)
 * and the weights after the step.
 */
async function trainingStep(): Promise<Float32Array[]> {
  const x = tf.tensor4d(randomValues(X_SHAPE, 1), X_SHAPE as [number, number, number, number]);
  const filter = tf.tensor4d(randomValues([3, 3, 8, 16], 2), [3, 3, 8, 16]);
  const depthFilter = tf.tensor4d(randomValues([3, 3, 16, 2], 3), [3, 3, 16, 2]);
  const [dx, dFilter, dDepth] = tf.grads((a: tf.Tensor, f: tf.Tensor, d: tf.Tensor) =>
    tf.sum(
      tf.relu(
        tf.depthwiseConv2d(
          tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 2, 'same'),
          d as tf.Tensor4D,
          1,
          'valid',
        ),
      ),
    ),
  )([x, filter, depthFilter]);
  const grads = await Promise.all([dx!, dFilter!, dDepth!].map((t) => t.data<'float32'>()));
  tf.dispose([dx!, dFilter!, dDepth!, filter, depthFilter]);

  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: X_SHAPE.slice(1), filters: 16, kernelSize: 3, strides: 2 }),
      tf.layers.batchNormalization({ trainable: false }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 1, activation: 'sigmoid' }),
    ],
  });
  model.setWeights(
    model.weights.map((w, i) => {
      const shape = w.shape as number[];
      const values = randomValues(shape, 10 + i);
      // A variance must be positive.
      if (w.name.includes('moving_variance')) {
        for (let j = 0; j < values.length; j++) values[j] = 0.5 + values[j]! ** 2;
      }
      return tf.tensor(values, shape);
    }),
  );
  compile(model, { optimizer: Adam(0.01), loss: 'binary_crossentropy' });
  const y = tf.tensor1d([0, 1, 1, 0]);
  await fit(model, { x, y }, { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
  const weights = await Promise.all(model.getWeights().map((w) => w.data<'float32'>()));
  tf.dispose([x, y]);
  model.dispose();
  return [...grads, ...weights];
}

const SRC = new URL('../src/engine/', import.meta.url).href;

/**
 * A script that starts the backend the way every xfer entry point does, runs a conv, and ends.
 * A file, not `node -e`: Node workers inherit the parent's `--input-type`, which only `-e` accepts.
 */
const CHILD_SCRIPT = `
import { initBackend } from '${SRC}backend.ts';
import { wasmThreadCount } from '${SRC}threads.ts';
import * as tf from '${SRC}tf.ts';
const backend = await initBackend();
const y = tf.conv2d(tf.ones([1, 5, 5, 2]), tf.ones([3, 3, 2, 1]), 1, 'valid');
console.log(JSON.stringify({ backend, threads: wasmThreadCount(), values: Array.from(await y.data()) }));
`;

describe('wasm threads', () => {
  after(async () => {
    await setWasmThreads(1);
  });

  test(`${WASM_THREADS_ENV} is a whole number of threads`, () => {
    const saved = process.env[WASM_THREADS_ENV];
    try {
      delete process.env[WASM_THREADS_ENV];
      assert.equal(requestedWasmThreads(1), 1);
      process.env[WASM_THREADS_ENV] = '2';
      assert.equal(requestedWasmThreads(1), 2);
      for (const bad of ['0', 'two', '1.5']) {
        process.env[WASM_THREADS_ENV] = bad;
        assert.throws(
          () => requestedWasmThreads(1),
          (error: Error) => {
            assert.match(error.message, new RegExp(`${WASM_THREADS_ENV}.*received '${bad}'`));
            return true;
          },
        );
      }
    } finally {
      if (saved === undefined) delete process.env[WASM_THREADS_ENV];
      else process.env[WASM_THREADS_ENV] = saved;
    }
  });

  test(`${WASM_THREADS_ENV}=2 starts the threaded build and the process still exits by itself`, {
    skip: wasmThreadsSupported() ? false : 'this Node has no shared WebAssembly memory',
  }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'xfer-threads-'));
    const script = path.join(dir, 'child.mts');
    await writeFile(script, CHILD_SCRIPT);
    const child = spawnSync(process.execPath, ['--import', 'tsx', script], {
      cwd: new URL('..', import.meta.url),
      env: { ...process.env, [WASM_THREADS_ENV]: '2', XFER_BACKEND: 'wasm' },
      encoding: 'utf8',
      // Its pool threads must not keep it alive: a hang is a failure, not a slow test.
      timeout: 90_000,
    });
    await rm(dir, { recursive: true, force: true });
    assert.equal(child.status, 0, `exit ${child.status} ${child.signal ?? ''}: ${child.stderr}`);
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!);
    // A 3x3 window of ones over 2 channels of ones, 3x3 valid positions: 18 each.
    assert.deepEqual(result, { backend: 'wasm', threads: 2, values: Array(9).fill(18) });
  });

  test('the threaded build runs in Node on 2 threads and trains exactly like 1 thread', {
    skip: wasmThreadsSupported() ? false : 'this Node has no shared WebAssembly memory',
  }, async () => {
    await initBackend('wasm');
    assert.equal(await setWasmThreads(1), 1);
    assert.equal(wasmThreadCount(), 1);
    const single = await trainingStep();

    assert.equal(await setWasmThreads(2), 2);
    assert.equal(tf.getBackend(), 'wasm');
    // XNNPACK's pool reports 2 even on a machine with 2 logical cores (tfjs would cap it at 1).
    assert.equal(wasmThreadCount(), 2);
    const threaded = await trainingStep();

    const names = ['dx', 'dFilter', 'dDepthwiseFilter'];
    single.forEach((expected, i) => {
      assertClose(threaded[i]!, expected, names[i] ?? `weight ${i - names.length}`);
    });
  });
});

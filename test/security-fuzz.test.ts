/**
 * A bounded, seeded fuzz run over every loader: valid small files of each format xfer reads are
 * mutated (bit flips, truncations, byte splices, length-field overwrites) and loaded. The process
 * must never crash or hang, and every failure must be an XferError with a code: never a raw
 * TypeError, RangeError or wasm abort.
 *
 * The cases run in a child process (this file, with XFER_FUZZ_CHILD set) so that a crash (a wasm
 * abort, a native fault) or a synchronous hang is seen by the parent instead of taking the runner
 * down; the child prints one JSON line per case. XFER_FUZZ_CASES (default 40 per format) and
 * XFER_FUZZ_SEED (default 8) make longer or different runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type * as TF from '../src/engine/tf.js';

const CASES = Number(process.env.XFER_FUZZ_CASES ?? 40);
const SEED = Number(process.env.XFER_FUZZ_SEED ?? 8);
/** One load may take this long before it counts as a hang. */
const CASE_TIMEOUT_MS = 15_000;

interface CaseResult {
  format: string;
  index: number;
  mutation: string;
  outcome: 'ok' | 'xfer' | 'raw' | 'timeout';
  detail?: string;
}

async function child(): Promise<void> {
  const tf = await import('../src/engine/tf.js');
  const { initBackend } = await import('../src/engine/backend.js');
  const { XferError } = await import('../src/errors.js');
  const { Random } = await import('../src/util/random.js');
  const { loadWeights, saveWeights, saveModel, loadModel, readSafetensors } = await import(
    '../src/weights/index.js'
  );
  const { loadImg } = await import('../src/data/index.js');
  const { exportOnnx } = await import('../src/engine/onnx/export.js');
  const { assertSelfContainedOnnx } = await import('../src/engine/onnx/safety.js');
  const h5wasm = (await import('h5wasm/node')).default;
  const { zipSync } = await import('fflate');
  const sharp = (await import('sharp')).default;
  await initBackend();
  await h5wasm.ready;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-security-fuzz-'));
  const emit = (result: CaseResult) => process.stdout.write(`${JSON.stringify(result)}\n`);

  const makeModel = () => {
    const input = tf.input({ shape: [3] });
    const hidden = tf.layers.dense({ units: 4, name: 'dense' }).apply(input) as TF.SymbolicTensor;
    const output = tf.layers
      .dense({ units: 2, name: 'dense_1' })
      .apply(hidden) as TF.SymbolicTensor;
    return tf.model({ inputs: input, outputs: output });
  };
  const model = makeModel();
  const target = makeModel();

  // Valid files, one per format.
  const legacyH5 = path.join(dir, 'valid.h5');
  await saveWeights(model, legacyH5);
  const keras3H5 = path.join(dir, 'valid.weights.h5');
  {
    const h5 = new h5wasm.File(keras3H5, 'w');
    h5.create_group('vars');
    const layers = h5.create_group('layers');
    for (const name of ['dense', 'dense_1']) {
      const vars = layers.create_group(name).create_group('vars');
      model
        .getLayer(name)
        .getWeights()
        .forEach((w, i) => {
          vars.create_dataset({
            name: String(i),
            data: Float32Array.from(w.dataSync()),
            shape: w.shape,
          });
        });
    }
    h5.close();
  }
  const layer = (class_name: string, name: string) => ({
    module: 'keras.layers',
    class_name,
    config: { name, trainable: true },
    registered_name: null,
  });
  const config = {
    module: 'keras.src.models.functional',
    class_name: 'Functional',
    config: {
      name: 'fuzz',
      layers: [layer('InputLayer', 'input'), layer('Dense', 'dense'), layer('Dense', 'dense_1')],
    },
  };
  const kerasZip = zipSync(
    {
      'config.json': Buffer.from(JSON.stringify(config)),
      'metadata.json': Buffer.from('{"keras_version":"3.6.0"}'),
      'model.weights.h5': await fsp.readFile(keras3H5),
    },
    { level: 6 },
  );
  const tfjsDir = path.join(dir, 'valid-tfjs');
  await saveModel(model, tfjsDir);
  const safetensors = (() => {
    const values = Float32Array.from({ length: 12 }, (_, i) => i / 4);
    const header = Buffer.from(
      JSON.stringify({
        __metadata__: { format: 'pt' },
        'fc.weight': { dtype: 'F32', shape: [4, 2], data_offsets: [0, 32] },
        'fc.bias': { dtype: 'F16', shape: [2], data_offsets: [32, 36] },
        'fc.other': { dtype: 'F32', shape: [3], data_offsets: [36, 48] },
      }),
    );
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    return Buffer.concat([length, header, Buffer.from(values.buffer)]);
  })();
  const raw = () =>
    sharp(Buffer.from(Array.from({ length: 8 * 6 * 3 }, (_, i) => (i * 29) % 256)), {
      raw: { width: 8, height: 6, channels: 3 },
    });
  const onnxBytes = exportOnnx(model).bytes;

  const random = new Random(SEED);
  /** One seeded mutation of `bytes`, with what it did. */
  const mutate = (bytes: Uint8Array): [Uint8Array, string] => {
    const out = Uint8Array.from(bytes);
    const at = random.randint(0, out.length);
    switch (random.randint(0, 5)) {
      case 0: {
        const flips = random.randint(1, 9);
        for (let i = 0; i < flips; i++) {
          const p = random.randint(0, out.length);
          out[p] = out[p]! ^ (1 << random.randint(0, 8));
        }
        return [out, `${flips} bit flips`];
      }
      case 1:
        return [out.subarray(0, at), `truncated to ${at}`];
      case 2: {
        const from = random.randint(0, out.length);
        const length = random.randint(1, 64);
        const piece = out.slice(from, from + length);
        const merged = new Uint8Array(out.length + piece.length);
        merged.set(out.subarray(0, at));
        merged.set(piece, at);
        merged.set(out.subarray(at), at + piece.length);
        return [merged, `spliced ${piece.length} bytes from ${from} at ${at}`];
      }
      case 3: {
        // A length or offset field overwritten with an extreme value.
        const values = [0xffffffff, 0x7fffffff, 0x80000000, 0, 1, 0xfffffffe];
        const value = values[random.randint(0, values.length)]!;
        const view = new DataView(out.buffer);
        const p = Math.min(at, Math.max(0, out.length - 8));
        if (out.length >= 8) {
          view.setUint32(p, value, true);
          if (random.next() < 0.5) view.setUint32(p + 4, value, true);
        }
        return [out, `length field at ${p} = 0x${value.toString(16)}`];
      }
      default: {
        const p = random.randint(0, out.length);
        const length = random.randint(1, 32);
        for (let i = p; i < Math.min(out.length, p + length); i++) out[i] = random.randint(0, 256);
        return [out, `${length} random bytes at ${p}`];
      }
    }
  };

  const withTimeout = <T>(work: Promise<T>): Promise<T | 'timeout'> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CASE_TIMEOUT_MS);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  };

  const run = async (
    format: string,
    valid: Uint8Array,
    load: (bytes: Uint8Array, index: number) => Promise<unknown>,
  ) => {
    for (let index = 0; index < CASES; index++) {
      const [bytes, mutation] = mutate(valid);
      process.stdout.write(`${JSON.stringify({ start: format, index, mutation })}\n`);
      let outcome: CaseResult['outcome'] = 'ok';
      let detail: string | undefined;
      try {
        const result = await withTimeout(load(bytes, index));
        if (result === 'timeout') outcome = 'timeout';
        else if (result && typeof (result as { dispose?: unknown }).dispose === 'function') {
          (result as { dispose(): void }).dispose();
        }
      } catch (error) {
        if (error instanceof XferError && typeof error.code === 'string') {
          outcome = 'xfer';
          detail = error.code;
        } else {
          outcome = 'raw';
          const where = String((error as Error)?.stack ?? '')
            .split('\n')
            .filter(
              (l) =>
                l.trim().startsWith('at ') && !l.includes('wasm://') && !l.includes('hdf5_util.js'),
            )
            .slice(0, 4)
            .join(' | ');
          detail = `${(error as Error)?.name}: ${String((error as Error)?.message ?? error).slice(0, 200)} @ ${where}`;
        }
      }
      emit({ format, index, mutation, outcome, ...(detail ? { detail } : {}) });
    }
  };

  const file = async (name: string, bytes: Uint8Array, index: number) => {
    const p = path.join(dir, `${index}-${name}`);
    await fsp.writeFile(p, bytes);
    return p;
  };
  const only = process.env.XFER_FUZZ_ONLY?.split(',');
  const formats: [string, Uint8Array, (b: Uint8Array, i: number) => Promise<unknown>][] = [
    [
      'h5',
      await fsp.readFile(legacyH5),
      async (b, i) => loadWeights(target, await file('w.h5', b, i)),
    ],
    [
      'weights.h5',
      await fsp.readFile(keras3H5),
      async (b, i) => loadWeights(target, await file('m.weights.h5', b, i)),
    ],
    ['keras', kerasZip, async (b, i) => loadWeights(target, await file('m.keras', b, i))],
    [
      'tfjs-json',
      await fsp.readFile(path.join(tfjsDir, 'model.json')),
      async (b, i) => {
        const d = path.join(dir, `tfjs-json-${i}`);
        await fsp.cp(tfjsDir, d, { recursive: true });
        await fsp.writeFile(path.join(d, 'model.json'), b);
        return loadModel(d);
      },
    ],
    [
      'tfjs-shard',
      await fsp.readFile(path.join(tfjsDir, 'weights.bin')),
      async (b, i) => {
        const d = path.join(dir, `tfjs-shard-${i}`);
        await fsp.cp(tfjsDir, d, { recursive: true });
        await fsp.writeFile(path.join(d, 'weights.bin'), b);
        return loadWeights(target, d);
      },
    ],
    [
      'safetensors',
      safetensors,
      async (b, i) => {
        const st = await readSafetensors(await file('m.safetensors', b, i));
        for (const entry of st.tensors) {
          try {
            st.read(entry);
          } catch (error) {
            // F16/BF16/F32 read; a dtype flipped to one that is listed but not read is UNSUPPORTED.
            if (!(error instanceof XferError)) throw error;
          }
        }
      },
    ],
    ['jpeg', await raw().jpeg().toBuffer(), async (b, i) => loadImg(await file('i.jpg', b, i))],
    ['png', await raw().png().toBuffer(), async (b, i) => loadImg(await file('i.png', b, i))],
    ['webp', await raw().webp().toBuffer(), async (b, i) => loadImg(await file('i.webp', b, i))],
    ['onnx', onnxBytes, async (b) => assertSelfContainedOnnx(b, 'fuzz.onnx')],
  ];
  for (const [format, valid, load] of formats) {
    if (only && !only.includes(format)) continue;
    await run(format, valid, load);
  }
  await fsp.rm(dir, { recursive: true, force: true });
}

if (process.env.XFER_FUZZ_CHILD) {
  await child();
} else {
  test(`fuzz: ${CASES} mutations per format, every failure a typed XferError, no crash or hang`, async () => {
    const self = fileURLToPath(import.meta.url);
    const started = Date.now();
    const proc = spawn(process.execPath, ['--import', 'tsx', self], {
      env: {
        ...process.env,
        XFER_FUZZ_CHILD: '1',
        XFER_BACKEND: process.env.XFER_BACKEND ?? 'cpu',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => {
      stdout += d;
    });
    proc.stderr.on('data', (d) => {
      stderr += d;
    });
    // The whole run is bounded too: a synchronous hang blocks the child's own timers.
    const limit = 30_000 + CASES * 10 * 1000;
    const killer = setTimeout(() => proc.kill('SIGKILL'), limit);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      proc.on('exit', (c, s) => resolve([c, s])),
    );
    clearTimeout(killer);
    const lines = stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as CaseResult & { start?: string });
    const results = lines.filter((l) => l.start === undefined);
    const last = lines[lines.length - 1];
    assert.equal(
      code,
      0,
      `the fuzz child died (code ${code}, signal ${signal}) during ${JSON.stringify(last)}\n${stderr.slice(-2000)}`,
    );
    const bad = results.filter((r) => r.outcome === 'raw' || r.outcome === 'timeout');
    const tally: Record<string, Record<string, number>> = {};
    for (const r of results) {
      tally[r.format] ??= {};
      tally[r.format]![r.outcome] = (tally[r.format]![r.outcome] ?? 0) + 1;
    }
    process.stderr.write(
      `fuzz: ${results.length} cases in ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(tally)}\n`,
    );
    assert.deepEqual(bad, [], 'every failure must be a typed XferError within the time limit');
    const formats = process.env.XFER_FUZZ_ONLY?.split(',').length ?? 10;
    assert.equal(results.length, CASES * formats);
  });
}

/**
 * Checkpoints survive SIGKILL at random moments: a child process trains a small model and saves
 * after every batch through the real save paths (ModelCheckpoint as a tfjs model folder and as
 * Keras .h5, and the resumable last.ckpt), and is killed at seeded random moments — half of them
 * a random delay after the first epoch, half a random 0-20 ms after a temp file of a save appears,
 * so that many kills land inside a write. After each kill every checkpoint on disk loads with
 * xfer's own loaders and is complete, and the temp files of the run killed before are gone.
 *
 * Three lanes (own folders) run side by side; only lane 0 writes .h5, because loading h5wasm
 * costs a child seconds of CPU.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fsp, watch as watchFolder } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import {
  compiledOptimizer,
  readTrainingState,
  restoreTrainingState,
} from '../src/recipes/resume.js';
import { compile } from '../src/training/compile.js';
import { Random } from '../src/util/random.js';
import { loadWeights } from '../src/weights/load.js';
import { loadModel, readModelFolder } from '../src/weights/tfjs-format.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KILLS = 15;

let dir: string;
before(async () => {
  process.env.XFER_BACKEND = 'cpu';
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-checkpoint-kill-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** The child's model, spelled the same in the child's script below. */
function buildModel(): tf.LayersModel {
  const m = tf.sequential({
    layers: [
      tf.layers.dense({ units: 256, inputShape: [64], activation: 'relu', name: 'hidden_1' }),
      tf.layers.dense({ units: 256, activation: 'relu', name: 'hidden_2' }),
      tf.layers.dense({ units: 2, activation: 'softmax', name: 'predictions' }),
    ],
  });
  compile(m, { optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  return m;
}

function childScript(lane: string, withH5: boolean, run: number): string {
  const src = (p: string) => JSON.stringify(path.join(ROOT, 'src', p));
  const file = (name: string) => JSON.stringify(path.join(lane, name));
  const h5 = withH5
    ? `new ModelCheckpoint(${file('best.weights.h5')}, { saveWeightsOnly: true, saveFreq: 1 }),`
    : '';
  return `
    import * as tf from ${src('engine/tf.ts')};
    import { initBackend } from ${src('engine/backend.ts')};
    import { Callback } from ${src('training/callback.ts')};
    import { compile } from ${src('training/compile.ts')};
    import { fit } from ${src('training/fit.ts')};
    import { ModelCheckpoint } from ${src('training/model-checkpoint.ts')};
    import { TrainingStateCallback, compiledOptimizer } from ${src('recipes/resume.ts')};
    await initBackend();
    const m = tf.sequential({ layers: [
      tf.layers.dense({ units: 256, inputShape: [64], activation: 'relu', name: 'hidden_1' }),
      tf.layers.dense({ units: 256, activation: 'relu', name: 'hidden_2' }),
      tf.layers.dense({ units: 2, activation: 'softmax', name: 'predictions' }),
    ] });
    compile(m, { optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const x = tf.randomUniform([32, 64]);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 2), 'int32'), 2);
    // Before each batch's saves, weight i of the model is filled with (save * 8 + i) / 2^17,
    // exact in float32, so a checkpoint shows which save each of its weights came from.
    let save = ${run} * 1000;
    class Stamp extends Callback {
      onTrainBatchEnd() {
        save++;
        const values = m.getWeights().map((w, i) => tf.fill(w.shape, (save * 8 + i) / 131072));
        m.setWeights(values);
        tf.dispose(values);
      }
    }
    class Ready extends Callback {
      onEpochEnd() { process.stdout.write('ready\\n'); }
    }
    await fit(m, { x, y }, {
      epochs: 1000000, batchSize: 16, verbose: 0,
      callbacks: [
        new Stamp(),
        new ModelCheckpoint(${file('model')}, { saveFreq: 1 }),
        ${h5}
        new TrainingStateCallback(${file('last.ckpt')}, { optimizer: compiledOptimizer(m), seed: 1 }),
        new Ready(),
      ],
    });
  `;
}

function startChild(script: string): { child: ChildProcess; exited: Promise<unknown> } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, XFER_BACKEND: 'cpu' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, exited: new Promise((resolve) => child.on('exit', resolve)) };
}

function waitForReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    const onData = (d: Buffer) => {
      if (d.toString().includes('ready')) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    child.on('exit', (code) => reject(new Error(`the child exited (${code}) early: ${stderr}`)));
  });
}

/** Resolves when a temp file of a save appears in one of `folders`. */
function tempFileAppears(folders: string[]): { seen: Promise<void>; stop: () => void } {
  let resolveSeen: () => void = () => undefined;
  const seen = new Promise<void>((resolve) => {
    resolveSeen = resolve;
  });
  const watchers = folders.map((folder) =>
    watchFolder(folder, (_event, name) => {
      if (name?.toString().endsWith('.tmp')) resolveSeen();
    }),
  );
  return {
    seen,
    stop: () => {
      for (const w of watchers) w.close();
    },
  };
}

function finite(values: ArrayLike<number>): boolean {
  return Array.from(values).every(Number.isFinite);
}

/**
 * The save a checkpoint's weights come from: every weight must be the constant the child's stamp
 * gave it, weight i carrying i, all of one save. A torn or mixed checkpoint fails here.
 */
function stampOf(weights: tf.Tensor[], label: string): number {
  const saves = weights.map((w, i) => {
    const values = w.dataSync();
    const k = values[0]! * 131072;
    assert.ok(Number.isInteger(k) && k % 8 === i, `${label}: weight ${i} holds ${values[0]}`);
    assert.ok(
      values.every((v) => v === values[0]),
      `${label}: weight ${i} is not one save's stamp`,
    );
    return (k - i) / 8;
  });
  assert.ok(
    saves.every((x) => x === saves[0]),
    `${label}: weights from saves ${[...new Set(saves)].join(', ')}`,
  );
  return saves[0]!;
}

/** Every checkpoint in `lane` loads with xfer's loaders and is complete. */
async function checkLane(
  lane: string,
  withH5: boolean,
  probe: tf.Tensor,
  label: string,
): Promise<void> {
  const folder = path.join(lane, 'model');
  // The model folder: model.json lists one weights file, whose size matches the specs exactly.
  const read = await readModelFolder(folder);
  const shards = read.json.weightsManifest.flatMap((g) => g.paths);
  assert.equal(shards.length, 1, label);
  assert.match(shards[0]!, /^weights\.[0-9a-f]{12}\.bin$/);
  const model = await loadModel(folder);
  const out = model.predict(probe) as tf.Tensor;
  assert.ok(finite(out.dataSync()), `${label}: the folder's model predicts finite values`);
  out.dispose();
  stampOf(model.getWeights(), `${label}, model folder`);
  model.dispose();
  const fresh = buildModel();
  if (withH5) {
    await loadWeights(fresh, path.join(lane, 'best.weights.h5'));
    stampOf(fresh.getWeights(), `${label}, .h5`);
  }
  // last.ckpt: the whole training state, weights and Adam's moments, restores.
  const ckpt = path.join(lane, 'last.ckpt');
  const loaded = await readTrainingState(ckpt);
  assert.ok(loaded.state.epochsDone >= 1, `${label}: epochsDone ${loaded.state.epochsDone}`);
  stampOf(loaded.modelWeights, `${label}, last.ckpt`);
  await restoreTrainingState(fresh, compiledOptimizer(fresh), loaded, ckpt);
  fresh.dispose();
}

const LANES = 3;

test(`${KILLS} SIGKILLs at random moments: every checkpoint left loads and is complete`, async (t) => {
  const random = new Random(8);
  const probe = tf.randomUniform([3, 64], 0, 1, 'float32', 5);
  const delays = Array.from({ length: KILLS }, (_, k) =>
    Math.floor(k % 2 === 0 ? random.uniform(0, 250) : random.uniform(0, 20)),
  );
  let midSave = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: LANES }, async (_, laneIndex) => {
      const lane = path.join(dir, `lane-${laneIndex}`);
      const folder = path.join(lane, 'model');
      await fsp.mkdir(folder, { recursive: true });
      const withH5 = laneIndex === 0;
      let previousPid: number | undefined;
      for (let kill = laneIndex; kill < KILLS; kill += LANES) {
        const { child, exited } = startChild(childScript(lane, withH5, kill));
        await waitForReady(child);
        if (kill % 2 === 1) {
          const watcher = tempFileAppears([lane, folder]);
          await watcher.seen;
          watcher.stop();
        }
        await new Promise((resolve) => setTimeout(resolve, delays[kill]));
        child.kill('SIGKILL');
        await exited;
        const label = `kill ${kill} (lane ${laneIndex})`;

        const names = [...(await fsp.readdir(lane)), ...(await fsp.readdir(folder))];
        const temps = names.filter((n) => n.endsWith('.tmp'));
        if (temps.length > 0 || names.filter((n) => n.endsWith('.bin')).length > 1) midSave++;
        // The run killed before left its temps; this run's first saves removed them.
        if (previousPid !== undefined) {
          const stale = temps.filter((n) => n.includes(`.${previousPid}.`));
          assert.deepEqual(stale, [], `${label}: the killed run's temp files are removed`);
        }
        assert.ok(names.filter((n) => n.endsWith('.bin')).length <= 2, `${label}: ${names}`);
        previousPid = child.pid;
        await checkLane(lane, withH5, probe, label);
      }
    }),
  );
  probe.dispose();
  t.diagnostic(
    `${midSave} of ${KILLS} kills left a save unfinished; ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
});

/**
 * `xfer train` interrupted and resumed, as a user does it: SIGINT after the first epoch line,
 * exit status 130 with a message saying how to resume, a loadable last-epoch state, then
 * `--resume` finishing the remaining epochs with the epoch numbers going on.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { readTrainingState } from '../src/recipes/resume.js';
import { h5Ready, readKerasH5 } from '../src/weights/h5.js';
import { jsonLines, REPO_ROOT, runXfer } from './helpers/cli.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

let tmp: string;
let data: string;
before(async () => {
  tmp = await makeTempDir('cli-train-resume');
  // 40 batches of 2 per epoch: long enough that a signal sent at an epoch's end lands mid-epoch.
  data = await makeImageFolder(path.join(tmp, 'data'), {
    splits: { train: 40, validation: 4, test: 4 },
    size: 28,
  });
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const TRAIN = ['--backbone', 'demo_cnn', '--weights', 'none', '--batch-size', '2', '--seed', '7'];

/** Runs `xfer train`, sending `signal` when the first epoch's JSON line appears on stdout. */
function trainAndSignal(
  args: string[],
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'xfer.js'), ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!sent && /"epoch":1\b/.test(stdout)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}

test('SIGINT after the first epoch stops cleanly, and --resume finishes the run', async () => {
  const out = path.join(tmp, 'run');
  const run = await trainAndSignal(
    ['train', data, ...TRAIN, '--epochs', '3', '--out', out, '--json'],
    'SIGINT',
  );
  assert.equal(run.code, 130, run.stderr);
  const message = run.stderr.match(/xfer: error: (.*)/)?.[1] ?? '';
  const m = message.match(
    /interrupted by SIGINT during epoch (\d) of 3; .* keeps the state after epoch (\d); continue with: xfer train --resume (\S+)/,
  );
  assert.ok(m, run.stderr);
  const done = Number(m[2]);
  assert.equal(Number(m[1]), done + 1);
  assert.equal(m[3], out);
  assert.ok(done >= 1 && done < 3, `stopped after epoch ${done}`);
  assert.equal(
    jsonLines(run.stdout).length,
    done,
    'one JSON line per completed epoch, none for the cut one',
  );
  assert.doesNotMatch(run.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');

  // What the interrupted run left is whole and loadable.
  const { state, modelWeights, optimizerWeights } = await readTrainingState(
    path.join(out, 'last.ckpt'),
  );
  assert.equal(state.epochsDone, done);
  assert.equal(state.history.loss!.length, done);
  assert.equal(state.seed, 7);
  assert.ok(modelWeights.length > 0);
  // Adam: the step count, then a first and a second moment per trainable weight (Dense kernel and bias).
  assert.equal(optimizerWeights.length, 1 + 2 * 2);
  assert.equal((await optimizerWeights[0]!.tensor.data())[0], done * 40);
  await h5Ready();
  assert.ok(readKerasH5(path.join(out, 'best.weights.h5'), (c) => c.layers.length) > 0);
  const csvRows = (await fsp.readFile(path.join(out, 'history.csv'), 'utf8')).trim().split('\n');
  assert.equal(csvRows.length, 1 + done);
  const left = (await fsp.readdir(out)).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(left, [], 'no temp files left');
  // The unfinished folder is not a model yet, and says how to finish it.
  const predict = await runXfer(['predict', out, path.join(data, 'test', 'cats', 'cat.0.png')]);
  assert.equal(predict.code, 3);
  assert.match(predict.stderr, /interrupted: finish it with `xfer train --resume /);

  const resumed = await runXfer(['train', '--resume', out, '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const lines = jsonLines(resumed.stdout);
  assert.deepEqual(
    lines.slice(0, -1).map((l) => l.epoch),
    Array.from({ length: 3 - done }, (_, i) => done + 1 + i),
  );
  assert.equal(lines.at(-1)!.epochs, 3);
  assert.ok(lines.at(-1)!.test.accuracy >= 0);
  const rows = (await fsp.readFile(path.join(out, 'history.csv'), 'utf8')).trim().split('\n');
  assert.deepEqual(
    rows.slice(1).map((r) => Number(r.split(',')[0])),
    [0, 1, 2],
  );
  await fsp.access(path.join(out, 'model', 'model.json'));
  const final = await readTrainingState(path.join(out, 'last.ckpt'));
  assert.equal(final.state.epochsDone, 3);
  assert.equal(final.state.finished, true);
  assert.equal((await final.optimizerWeights[0]!.tensor.data())[0], 3 * 40);
});

test('SIGTERM is handled the same way; a resumed run may not change what it trains', async () => {
  const out = path.join(tmp, 'run-term');
  const run = await trainAndSignal(
    ['train', data, ...TRAIN, '--epochs', '3', '--out', out, '--json'],
    'SIGTERM',
  );
  assert.equal(run.code, 130, run.stderr);
  assert.match(run.stderr, /interrupted by SIGTERM/);
  const changed = await runXfer(['train', '--resume', out, '--batch-size', '4']);
  assert.equal(changed.code, 2);
  assert.match(changed.stderr, /--batch-size cannot change when resuming \(the run used 2\)/);
});

test('SIGKILL mid-epoch leaves every file loadable', async () => {
  const out = path.join(tmp, 'run-kill');
  const run = await trainAndSignal(
    ['train', data, ...TRAIN, '--epochs', '2', '--out', out, '--json'],
    'SIGKILL',
  );
  assert.equal(run.signal, 'SIGKILL');
  const { state } = await readTrainingState(path.join(out, 'last.ckpt'));
  assert.ok(state.epochsDone >= 1);
  await h5Ready();
  assert.ok(readKerasH5(path.join(out, 'best.weights.h5'), (c) => c.layers.length) > 0);
  assert.ok((await fsp.readFile(path.join(out, 'history.csv'), 'utf8')).startsWith('epoch,'));
});

test('--config repeats a run; flags on the command line override it', async () => {
  // The SIGINT test's run folder: its config.json is complete from the start.
  const first = path.join(tmp, 'run');
  const second = path.join(tmp, 'cfg');
  const b = await runXfer([
    'train',
    '--config',
    path.join(first, 'config.json'),
    '--out',
    second,
    '--epochs',
    '1',
    '--json',
  ]);
  assert.equal(b.code, 0, b.stderr);
  const configA = JSON.parse(await fsp.readFile(path.join(first, 'config.json'), 'utf8'));
  const configB = JSON.parse(await fsp.readFile(path.join(second, 'config.json'), 'utf8'));
  assert.deepEqual({ ...configB, epochs: 3 }, configA);
  assert.equal(configB.epochs, 1);
  assert.equal(configB.seed, 7);
  assert.equal(jsonLines(b.stdout).length, 2);
  await fsp.access(path.join(second, 'report.html'));
});

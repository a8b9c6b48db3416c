/**
 * Machine-readable output on every command (`--json`), progress on stderr only (plain lines when
 * stderr is not a terminal, nothing under --quiet), serve's lifecycle lines, and a diverging run
 * stopped with TerminateOnNaN's message and a non-zero exit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { jsonLines, REPO_ROOT, runXfer } from './helpers/cli.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

let tmp: string;
let data: string;
let run: string;
let trainStdout: string;

const TRAIN = ['--backbone', 'demo_cnn', '--weights', 'none', '--batch-size', '4', '--seed', '1'];

before(async () => {
  tmp = await makeTempDir('cli-json');
  data = await makeImageFolder(path.join(tmp, 'data'), {
    splits: { train: 4, validation: 2, test: 6 },
    size: 28,
  });
  run = path.join(tmp, 'run');
  const result = await runXfer(['train', data, ...TRAIN, '--epochs', '1', '--out', run, '--json']);
  assert.equal(result.code, 0, result.stderr);
  trainStdout = result.stdout;
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

test('every command registers --json (datasets: each subcommand)', async () => {
  // One spawn for the list of commands; the options are read from each command's file (a spawn
  // per `--help` costs seconds each on a loaded machine).
  const top = await runXfer(['--help']);
  assert.equal(top.code, 0, top.stderr);
  const listed = [...top.stdout.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!);
  const dir = path.join(REPO_ROOT, 'src', 'cli', 'commands');
  const files = (await fsp.readdir(dir)).filter((f) => f.endsWith('.ts'));
  assert.deepEqual(
    listed.filter((c) => c !== 'help').sort(),
    files.map((f) => f.replace(/\.ts$/, '')).sort(),
  );
  for (const file of files) {
    const source = await fsp.readFile(path.join(dir, file), 'utf8');
    const commands = source.match(/\.command\('/g)!.length;
    const json = source.match(/\.option\(\s*'--json'/g)?.length ?? 0;
    // `datasets` is a group: its own .command() has no options, each subcommand has --json.
    assert.equal(json, file === 'datasets.ts' ? commands - 1 : commands, `${file}: --json missing`);
  }
});

test('train --json: stdout holds JSON lines only (one per epoch, then the result)', () => {
  const lines = trainStdout.trim().split('\n');
  const parsed = lines.map((line) => JSON.parse(line));
  assert.equal(parsed.length, 2);
  assert.equal(parsed[0].epoch, 1);
  assert.equal(parsed[1].outDir, run);
});

test('evaluate --json: one JSON object on stdout; progress lines on stderr, none under --quiet', async () => {
  const test = path.join(data, 'test');
  const result = await runXfer([
    'evaluate',
    run,
    test,
    '--json',
    '--batch-size',
    '4',
    '--no-report',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]!).samples, 12);
  // 12 images in batches of 4: a start and an end line, no redraws (stderr is a pipe here).
  assert.match(result.stderr, /^evaluate: 0\/3 batches$/m);
  assert.match(result.stderr, /^evaluate: 3\/3 batches$/m);
  const quiet = await runXfer([
    '--quiet',
    'evaluate',
    run,
    test,
    '--json',
    '--batch-size',
    '4',
    '--no-report',
  ]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
});

test('datasets list --json: one line per data set, with its folder and whether it is built', async () => {
  const home = path.join(tmp, 'home');
  const result = await runXfer(['datasets', 'list', '--json'], { env: { XFER_HOME: home } });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(jsonLines(result.stdout), [
    {
      name: 'cats-vs-dogs',
      description:
        "the seed's cats_and_dogs_small: train/validation/test x cats/dogs, 1000/500/500 per class",
      dir: path.join(home, 'datasets', 'cats_and_dogs_small'),
      built: false,
      archiveBytes: 824_887_076,
    },
  ]);
});

test('serve --json: listening, draining and stopped lines; SIGTERM exits 0', async () => {
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'bin', 'xfer.js'), 'serve', run, '--port', '0', '--json'],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const listening = await new Promise<Record<string, any>>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const first = jsonLines(stdout)[0];
      if (first) resolve(first);
    });
    child.on('close', () => reject(new Error(`serve exited early: ${stderr}`)));
  });
  assert.equal(listening.event, 'listening');
  assert.equal(listening.host, '127.0.0.1');
  assert.equal(listening.model, run);
  assert.equal(listening.url, `http://127.0.0.1:${listening.port}`);
  assert.ok(listening.port > 0);
  assert.equal(typeof listening.backend, 'string');
  const health = await fetch(`${listening.url}/health`);
  assert.equal(health.status, 200);
  await health.arrayBuffer();
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  assert.deepEqual(
    jsonLines(stdout).map((l) => l.event),
    ['listening', 'draining', 'stopped'],
  );
  assert.equal(jsonLines(stdout)[1]!.signal, 'SIGTERM');
});

test('train at a learning rate of 1e30 stops with the NaN message and a non-zero exit; epoch 1 has progress lines', async () => {
  const out = path.join(tmp, 'diverged');
  const result = await runXfer([
    'train',
    data,
    ...TRAIN,
    '--epochs',
    '3',
    '--learning-rate',
    '1e30',
    // The backbone trains too: activations overflow, the clipped loss stays finite, the weights
    // become NaN, and the weight check stops it.
    '--no-freeze-backbone',
    '--out',
    out,
  ]);
  assert.equal(result.code, 2, result.stderr);
  assert.match(
    result.stderr,
    /xfer: error: training stopped in epoch 1: weight \S+ became NaN or infinite at batch \d\. Lower the learning rate/,
  );
  // stdout is a pipe, so the epoch bar is not drawn there: the first epoch gets lines on stderr.
  assert.match(result.stderr, /^epoch 1: 0\/2 batches$/m);
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT } from './helpers/cli.js';
import { makeImageFolder, makeTempDir } from './helpers/image-folders.js';

let tmp: string | undefined;
after(async () => {
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

function runExample(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'examples', 'cats-vs-dogs.ts'), ...args],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test("examples/cats-vs-dogs.ts, the seed's program, runs offline on a cats_and_dogs_small-style folder", async () => {
  tmp = await makeTempDir('example');
  const data = await makeImageFolder(path.join(tmp, 'cats_and_dogs_small'), {
    splits: { train: 6, validation: 3, test: 3 },
    size: 40,
    format: 'jpeg',
  });
  const result = await runExample([
    data,
    '--weights',
    'none',
    '--image-size',
    '32',
    '--epochs',
    '2',
    '--batch-size',
    '4',
  ]);
  assert.equal(result.code, 0, result.stderr);
  // Keras's lines: the iterators, the summary of the frozen model, the evaluation, predict_func.
  assert.match(result.stdout + result.stderr, /Found 12 images belonging to 2 classes\./);
  assert.match(result.stdout, /Trainable params: 513\b/);
  assert.match(result.stdout, /Non-trainable params: 14,714,688/);
  assert.match(result.stdout, /test \{ loss: [\d.e-]+, accuracy: [\d.e-]+ \}/);
  assert.match(
    result.stdout,
    /probability: [\d.e-]+,\s+classIndex: [01],\s+className: '(cat|dog)'/,
  );
});

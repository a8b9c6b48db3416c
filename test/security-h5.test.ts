/**
 * Hostile HDF5 weight files: external storage, virtual datasets and shape bombs are refused with a
 * CORRUPT_FILE naming the dataset, before a byte outside the file is read or a large buffer is
 * allocated. The committed fixtures (test/fixtures/hostile, made by
 * scripts/make-hostile-fixtures.py) run everywhere; the same files made fresh with Debian's h5py,
 * pointing at a secret of the test's own, run where /usr/bin/python3 has h5py.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';
import { MAX_H5_COMPRESSION_RATIO } from '../src/weights/h5.js';
import { loadWeights, saveWeights } from '../src/weights/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.join(HERE, 'fixtures', 'hostile');
const SCRIPT = path.join(HERE, '..', 'scripts', 'make-hostile-fixtures.py');
const DEBIAN_PYTHON = '/usr/bin/python3';

/** The layer the fixtures describe: 'dense' with one 2x2 kernel (no bias). */
function denseModel(): tf.LayersModel {
  const input = tf.input({ shape: [2] });
  const output = tf.layers
    .dense({ units: 2, useBias: false, name: 'dense' })
    .apply(input) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output });
}

function kernel(model: tf.LayersModel): number[] {
  return Array.from(model.getLayer('dense').getWeights()[0]!.dataSync());
}

async function refused(file: string, pattern: RegExp): Promise<XferError> {
  const model = denseModel();
  const before = kernel(model);
  let caught: unknown;
  try {
    await loadWeights(model, file);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof XferError, `expected an XferError, got ${String(caught)}`);
  assert.equal(caught.code, 'CORRUPT_FILE');
  assert.match(caught.message, pattern);
  assert.match(caught.message, /dense\/dense\/kernel:0/);
  // Nothing was assigned.
  assert.deepEqual(kernel(model), before);
  model.dispose();
  return caught;
}

let tmp: string;
before(async () => {
  await initBackend();
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-security-h5-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('committed hostile fixtures', () => {
  test('external storage pointing at /etc/passwd is refused, naming the file', async () => {
    const error = await refused(
      path.join(FIXTURES, 'h5-external-storage.h5'),
      /outside the weight file.*external storage/,
    );
    assert.deepEqual(error.details.refused, ['/etc/passwd']);
  });

  test('a virtual dataset is refused from its metadata, naming its source', async () => {
    const error = await refused(path.join(FIXTURES, 'h5-virtual.h5'), /virtual dataset/);
    assert.deepEqual(error.details.virtualSources, ['h5-virtual-source.h5:data']);
  });

  test('a 40 GB dataset in an 8 KB file is refused before reading (plain and gzip)', async () => {
    const plain = await refused(path.join(FIXTURES, 'h5-shape-bomb.h5'), /shape bomb/);
    assert.equal(plain.details.declaredBytes, 100000 * 100000 * 4);
    const gzip = await refused(path.join(FIXTURES, 'h5-shape-bomb-gzip.h5'), /1032:1/);
    assert.ok(
      (gzip.details.declaredBytes as number) >
        (gzip.details.fileBytes as number) * MAX_H5_COMPRESSION_RATIO,
    );
  });

  test('an ordinary file still loads after the refusals (the confinement is undone)', async () => {
    const source = denseModel();
    source.getLayer('dense').setWeights([tf.tensor2d([1, 2, 3, 4], [2, 2])]);
    const file = path.join(tmp, 'ok.h5');
    await saveWeights(source, file);
    const target = denseModel();
    await loadWeights(target, file);
    assert.deepEqual(kernel(target), [1, 2, 3, 4]);
    source.dispose();
    target.dispose();
  });
});

const hasH5py =
  existsSync(DEBIAN_PYTHON) &&
  spawnSync(DEBIAN_PYTHON, ['-c', 'import h5py'], { stdio: 'ignore' }).status === 0;

describe('fixtures made fresh with h5py', () => {
  test('external storage reading a secret of our own: refused, nothing leaks', async (t) => {
    if (!hasH5py) {
      t.skip(`${DEBIAN_PYTHON} with h5py is not available (Debian's python3-h5py)`);
      return;
    }
    const out = path.join(tmp, 'fresh');
    const secret = path.join(tmp, 'secret.bin');
    // 16 bytes that read as the float32s 1, 2, 3, 4: a leak would show as that kernel.
    await fsp.writeFile(secret, Buffer.from(Float32Array.of(1, 2, 3, 4).buffer));
    const made = spawnSync(DEBIAN_PYTHON, [SCRIPT, out, secret], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const error = await refused(path.join(out, 'h5-external-storage.h5'), /outside the weight/);
    assert.deepEqual(error.details.refused, [secret]);
    await refused(path.join(out, 'h5-virtual.h5'), /virtual dataset/);
    await refused(path.join(out, 'h5-shape-bomb.h5'), /shape bomb/);
    await refused(path.join(out, 'h5-shape-bomb-gzip.h5'), /shape bomb/);
  });
});

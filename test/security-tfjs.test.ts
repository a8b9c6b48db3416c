/**
 * Hostile tfjs model folders: topologies tfjs would loop on forever (an unnamed layer, a node
 * naming a missing layer, a cycle), shard symlinks leading out of the folder, and weight specs
 * with impossible shapes are refused as CORRUPT_FILE, quickly, before tfjs rebuilds anything.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';
import { loadModel, loadWeights, saveModel } from '../src/weights/index.js';
import { checkLayersTopology } from '../src/weights/topology.js';

let dir: string;
let valid: string;
let json: any;

function makeModel(): tf.LayersModel {
  const input = tf.input({ shape: [3], name: 'input1' });
  const hidden = tf.layers.dense({ units: 4, name: 'dense' }).apply(input) as tf.SymbolicTensor;
  const output = tf.layers.dense({ units: 2, name: 'dense_1' }).apply(hidden) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output });
}

before(async () => {
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-security-tfjs-'));
  valid = path.join(dir, 'valid');
  const model = makeModel();
  await saveModel(model, valid);
  model.dispose();
  json = JSON.parse(await fsp.readFile(path.join(valid, 'model.json'), 'utf8'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A copy of the valid folder with `edit` applied to its model.json. */
async function variant(name: string, edit: (copy: any) => void): Promise<string> {
  const target = path.join(dir, name);
  await fsp.cp(valid, target, { recursive: true });
  const copy = structuredClone(json);
  edit(copy);
  await fsp.writeFile(path.join(target, 'model.json'), JSON.stringify(copy));
  return target;
}

async function refused(load: Promise<unknown>, pattern: RegExp): Promise<void> {
  const started = Date.now();
  await assert.rejects(load, (error: unknown) => {
    assert.ok(error instanceof XferError, String(error));
    assert.equal(error.code, 'CORRUPT_FILE');
    assert.match(error.message, pattern);
    return true;
  });
  assert.ok(Date.now() - started < 10_000, 'refused quickly, not after a long loop');
}

const layers = (copy: {
  modelTopology: { config: { layers: { name?: string; inbound_nodes: unknown[] }[] } };
}) => copy.modelTopology.config.layers;

test('a layer without its name (tfjs would loop forever) is refused', async () => {
  const folder = await variant('unnamed', (copy) => {
    delete layers(copy)[1]!.name;
  });
  await refused(loadModel(folder), /a layer without a name/);
});

test('a node naming a missing layer or node, and a cycle, are refused', async () => {
  const dangling = await variant('dangling', (copy) => {
    layers(copy)[2]!.inbound_nodes = [[['ghost', 0, 0, {}]]];
  });
  await refused(loadModel(dangling), /'dense_1' to \["ghost",0,0,\{\}\]/);
  const badNode = await variant('bad-node', (copy) => {
    layers(copy)[2]!.inbound_nodes = [[['dense', 3, 0, {}]]];
  });
  await refused(loadModel(badNode), /not a node of a listed layer/);
  const cycle = await variant('cycle', (copy) => {
    layers(copy)[1]!.inbound_nodes = [[['dense_1', 0, 0, {}]]];
  });
  await refused(loadModel(cycle), /cycle through/);
  const output = await variant('bad-output', (copy) => {
    copy.modelTopology.config.output_layers = [['nowhere', 0, 0]];
  });
  await refused(loadModel(output), /'output_layers'/);
});

test('the valid topology passes the check and loads', async () => {
  checkLayersTopology(json.modelTopology, 'model.json');
  const model = await loadModel(valid);
  assert.deepEqual(
    model.layers.map((l) => l.name),
    ['input1', 'dense', 'dense_1'],
  );
  model.dispose();
});

test('a shard that is a symlink out of the folder is refused', async () => {
  const folder = path.join(dir, 'symlinked');
  await fsp.cp(valid, folder, { recursive: true });
  const outside = path.join(dir, 'outside.bin');
  await fsp.copyFile(path.join(valid, 'weights.bin'), outside);
  await fsp.rm(path.join(folder, 'weights.bin'));
  await fsp.symlink(outside, path.join(folder, 'weights.bin'));
  const model = makeModel();
  await refused(
    loadWeights(model, folder),
    /symbolic link to .*outside\.bin, outside the model's folder/,
  );
  model.dispose();
});

test('weight specs with impossible shapes or dtypes are refused before decoding', async () => {
  const cases: [string, (spec: Record<string, unknown>) => void, RegExp][] = [
    ['negative', (s) => (s.shape = [-3, 4]), /not a list of sizes/],
    ['fraction', (s) => (s.shape = [1.5, 4]), /not a list of sizes/],
    ['huge', (s) => (s.shape = [2 ** 40, 2 ** 40]), /impossible size/],
    ['string-dtype', (s) => (s.dtype = 'string'), /dtype "string"/],
    ['no-name', (s) => delete s.name, /has no name/],
  ];
  for (const [name, edit, pattern] of cases) {
    const folder = await variant(`spec-${name}`, (copy) =>
      edit(copy.weightsManifest[0].weights[0]),
    );
    await refused(loadModel(folder), pattern);
  }
});

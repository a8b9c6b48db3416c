/**
 * A real Keras MobileNetV2 in tfjs layers format: the one the npm package nsfwjs ships (its lower
 * blocks carry Keras's ImageNet weights). nsfwjs packages it as browserify JS modules: model.min.js
 * exports the model.json as a JS object literal (unquoted keys, `!0`/`!1` for booleans) and
 * group1-shard1of1.min.js exports the weights as one base64 string (uint8-quantized). They are read
 * here as text, never run. The test loads the weights by name into xfer's MobileNetV2 (224x224,
 * alpha 1.0, as shipped) and compares its features with the original loaded by tfjs directly.
 */
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MobileNetV2 } from '../src/applications/mobilenet-v2.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { loadWeights } from '../src/weights/index.js';

function modelsDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    // Its exports map hides package.json; its main is dist/cjs/index.js.
    const root = path.resolve(path.dirname(require.resolve('nsfwjs')), '..', '..');
    const dir = path.join(root, 'dist', 'models', 'mobilenet_v2');
    return existsSync(path.join(dir, 'model.min.js')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

const dir = modelsDir();
const skip = dir ? false : 'the dev dependency nsfwjs is not installed (npm install)';
if (skip) console.log(`# skipping nsfwjs tests: ${skip}`);

/** Parses a JS object/array literal as minifiers write it: no code, only data tokens. */
function parseLiteral(text: string, start: number): unknown {
  let i = start;
  const fail = (what: string): never => {
    throw new Error(`cannot parse the literal at ${i}: ${what} (${text.slice(i, i + 40)})`);
  };
  const value = (): unknown => {
    const c = text[i]!;
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      while (text[i] !== '}') {
        let key: string;
        if (text[i] === '"') key = str();
        else {
          const m = /^[A-Za-z_$][\w$]*/.exec(text.slice(i, i + 200)) ?? fail('key');
          key = m[0];
          i += key.length;
        }
        if (text[i++] !== ':') fail("':'");
        out[key] = value();
        if (text[i] === ',') i++;
      }
      i++;
      return out;
    }
    if (c === '[') {
      i++;
      const out: unknown[] = [];
      while (text[i] !== ']') {
        out.push(value());
        if (text[i] === ',') i++;
      }
      i++;
      return out;
    }
    if (c === '"') return str();
    for (const [token, v] of [
      ['!0', true],
      ['!1', false],
      ['null', null],
      ['true', true],
      ['false', false],
    ] as const) {
      if (text.startsWith(token, i)) {
        i += token.length;
        return v;
      }
    }
    const m = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i.exec(text.slice(i, i + 40)) ?? fail('value');
    i += m[0].length;
    return Number(m[0]);
  };
  const str = (): string => {
    const m = /^"(?:[^"\\]|\\.)*"/.exec(text.slice(i)) ?? fail('string');
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  return value();
}

let work: string;
let original: tf.LayersModel;
before(async () => {
  if (skip) return;
  await initBackend();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-nsfwjs-'));
  const modelText = await fsp.readFile(path.join(dir!, 'model.min.js'), 'utf8');
  const at = modelText.indexOf('exports={modelTopology');
  assert.ok(at > 0, 'model.min.js exports an object literal with modelTopology');
  const modelJson = parseLiteral(modelText, at + 'exports='.length) as {
    modelTopology: object;
    weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  };
  const shardText = await fsp.readFile(path.join(dir!, 'group1-shard1of1.min.js'), 'utf8');
  const m = /exports="([A-Za-z0-9+/=]+)"/.exec(shardText);
  assert.ok(m, 'the shard module exports one base64 string');
  const weights = Buffer.from(m[1]!, 'base64');
  const specs = modelJson.weightsManifest.flatMap((g) => g.weights);
  // As a tfjs model folder, for loadWeights and for tfjs's own loader.
  await fsp.writeFile(path.join(work, 'weights.bin'), weights);
  await fsp.writeFile(
    path.join(work, 'model.json'),
    JSON.stringify({
      modelTopology: modelJson.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
    }),
  );
  const data = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
  original = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: specs,
      weightData: data,
    }),
  );
});
after(async () => {
  original?.dispose();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe("nsfwjs's Keras MobileNetV2", { skip }, () => {
  test('is a Keras 2.2.4 MobileNetV2 at 224x224, alpha 1.0', () => {
    assert.deepEqual(original.inputs[0]!.shape, [null, 224, 224, 3]);
    assert.equal(original.getLayer('Conv1').getWeights()[0]!.shape[3], 32);
    assert.equal(original.getLayer('Conv_1').getWeights()[0]!.shape[3], 1280);
  });

  test("loads by name into xfer's MobileNetV2 and gives the same features as tfjs's own load", async () => {
    const model = await MobileNetV2({
      includeTop: false,
      weights: null,
      inputShape: [224, 224, 3],
    });
    await loadWeights(model, path.join(work, 'model.json'));
    const features = tf.model({
      inputs: original.inputs,
      outputs: original.getLayer('out_relu').output as tf.SymbolicTensor,
    });
    const x = tf.tidy(() =>
      tf.sub(tf.mul(tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 3), 2), 1),
    );
    const expected = (features.predict(x) as tf.Tensor).dataSync();
    const actual = (model.predict(x) as tf.Tensor).dataSync();
    assert.equal(actual.length, 2 * 7 * 7 * 1280);
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < expected.length; i++) {
      scale = Math.max(scale, Math.abs(expected[i]!));
      diff = Math.max(diff, Math.abs(expected[i]! - actual[i]!));
    }
    console.log(
      `# nsfwjs MobileNetV2 features: max ${scale.toPrecision(4)}, max abs diff ${diff.toExponential(2)}`,
    );
    assert.ok(scale > 1, 'features should not be trivial');
    assert.ok(diff <= 1e-4 * scale, `max abs diff ${diff} over 1e-4 of the output scale ${scale}`);
    tf.dispose([x]);
    model.dispose();
  });
});

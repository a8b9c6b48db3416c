/**
 * The `.safetensors` reader on files written here byte by byte: dtype decoding (F32, F16, BF16),
 * the layout name maps and tensor transposes, `hf:` sources through a local server, the refusal of
 * pickle files, and hostile headers (sizes, offsets, overlaps, truncation, mutation).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TorchvisionMobileNetV2 } from '../src/applications/torchvision-mobilenet-v2.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import type { XferError } from '../src/errors.js';
import { hfUrl } from '../src/weights/hf.js';
import { loadWeights } from '../src/weights/index.js';
import { NAME_MAPS, transformTensor } from '../src/weights/name-maps.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { startServer, type TestServer } from './helpers/weights-server.js';

interface Tensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file: 8-byte LE header length, JSON header, data (offsets in order). */
function safetensors(
  tensors: Record<string, Tensor>,
  header?: (h: Record<string, unknown>) => void,
): Buffer {
  const h: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    h[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  header?.(h);
  const json = Buffer.from(JSON.stringify(h));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, ...Object.values(tensors).map((t) => Buffer.from(t.bytes))]);
}

function f32(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

function u16(values: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(values).buffer);
}

let dir: string;
before(async () => {
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-weights-safetensors-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function write(name: string, bytes: Uint8Array): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, bytes);
  return file;
}

describe('safetensors format', () => {
  test('decodes F32, F16 and BF16 to float32', async () => {
    const file = await write(
      'dtypes.safetensors',
      safetensors({
        a: { dtype: 'F32', shape: [2], bytes: f32([1.5, -2.25]) },
        // F16: 0x3c00 = 1, 0xc000 = -2, 0x3555 ~ 0.33325, 0x0001 = 2^-24 (subnormal).
        b: { dtype: 'F16', shape: [2, 2], bytes: u16([0x3c00, 0xc000, 0x3555, 0x0001]) },
        // BF16: the top halves of float32 1.0 (0x3f80) and -0.5 (0xbf00).
        c: { dtype: 'BF16', shape: [2], bytes: u16([0x3f80, 0xbf00]) },
        n: { dtype: 'I64', shape: [], bytes: new Uint8Array(8) },
      }),
    );
    const st = await readSafetensors(file);
    assert.deepEqual(st.metadata, { format: 'pt' });
    const get = (name: string) => Array.from(st.read(st.tensors.find((t) => t.name === name)!));
    assert.deepEqual(get('a'), [1.5, -2.25]);
    assert.deepEqual(get('b'), [1, -2, Math.fround(0.333251953125), Math.fround(2 ** -24)]);
    assert.deepEqual(get('c'), [1, -0.5]);
    assert.throws(
      () => get('n'),
      (error: XferError) => error.code === 'UNSUPPORTED',
    );
  });

  test('transposes conv OIHW -> HWIO, depthwise [C,1,kh,kw] -> [kh,kw,C,1], dense [out,in] -> [in,out]', () => {
    // conv: O=2, I=1, 1x2 kernel; value = 10*o + w.
    const conv = transformTensor(Float32Array.from([0, 1, 10, 11]), [2, 1, 1, 2], 'conv');
    assert.deepEqual(conv.shape, [1, 2, 1, 2]);
    assert.deepEqual(Array.from(conv.values), [0, 10, 1, 11]);
    const dw = transformTensor(Float32Array.from([0, 1, 10, 11]), [2, 1, 1, 2], 'depthwise');
    assert.deepEqual(dw.shape, [1, 2, 2, 1]);
    assert.deepEqual(Array.from(dw.values), [0, 10, 1, 11]);
    const dense = transformTensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], 'dense');
    assert.deepEqual(dense.shape, [3, 2]);
    assert.deepEqual(Array.from(dense.values), [1, 4, 2, 5, 3, 6]);
  });

  test('name maps: torchvision and timm names to Keras names', () => {
    const resnet = NAME_MAPS.find((m) => m.name === 'torchvision-resnet50')!;
    assert.deepEqual(resnet.map('layer1.0.conv1.weight'), {
      layer: 'conv2_block1_1_conv',
      weight: 'kernel',
      transform: 'conv',
    });
    assert.deepEqual(resnet.map('layer4.2.bn3.running_var'), {
      layer: 'conv5_block3_3_bn',
      weight: 'moving_variance',
      transform: 'none',
    });
    assert.equal(resnet.map('layer3.0.downsample.1.weight')?.layer, 'conv4_block1_0_bn');
    assert.equal(resnet.map('bn1.num_batches_tracked'), null);
    assert.equal(resnet.map('layer3.6.conv1.weight'), undefined);
    const tv = NAME_MAPS.find((m) => m.name === 'torchvision-mobilenet_v2')!;
    assert.deepEqual(tv.map('features.1.conv.0.0.weight'), {
      layer: 'expanded_conv_depthwise',
      weight: 'depthwise_kernel',
      transform: 'depthwise',
    });
    assert.equal(tv.map('features.17.conv.3.running_mean')?.layer, 'block_16_project_BN');
    const timm = NAME_MAPS.find((m) => m.name === 'timm-mobilenetv2')!;
    assert.equal(timm.map('blocks.3.3.conv_dw.weight')?.layer, 'block_9_depthwise');
    assert.equal(timm.map('blocks.6.0.conv_pwl.weight')?.layer, 'block_16_project');
  });

  test('hostile headers and data are CORRUPT_FILE before anything is allocated', async () => {
    const good = { w: { dtype: 'F32', shape: [2, 2], bytes: f32([1, 2, 3, 4]) } };
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(200_000_000n);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['short', Buffer.from([1, 2, 3]), /shorter than the 8-byte header length/],
      ['huge header', huge, /over the 100000000-byte limit/],
      ['header past end', safetensors(good).subarray(0, 20), /truncated/],
      [
        'data truncated',
        safetensors(good).subarray(0, safetensors(good).length - 4),
        /ends at byte 16 of the data, but the file holds 12/,
      ],
      [
        'size mismatch',
        safetensors(good, (h) => {
          (h.w as { shape: number[] }).shape = [2, 3];
        }),
        /needs 24 bytes but its offsets span 16/,
      ],
      [
        'overlap',
        safetensors(
          {
            a: { dtype: 'F32', shape: [2], bytes: f32([1, 2]) },
            b: { dtype: 'F32', shape: [2], bytes: f32([3, 4]) },
          },
          (h) => {
            (h.b as { data_offsets: number[] }).data_offsets = [4, 12];
          },
        ),
        /overlap/,
      ],
      [
        'negative offset',
        safetensors(good, (h) => {
          (h.w as { data_offsets: number[] }).data_offsets = [-4, 12];
        }),
        /data_offsets/,
      ],
      [
        'bad dtype',
        safetensors(good, (h) => {
          (h.w as { dtype: string }).dtype = 'F128';
        }),
        /dtype "F128"/,
      ],
      [
        'header not an object',
        (() => {
          const b = safetensors(good);
          b.write('[', 8);
          return b;
        })(),
        /not valid JSON|not a JSON object/,
      ],
    ];
    for (const [label, bytes, message] of cases) {
      const file = await write(`${label.replace(/\W/g, '_')}.safetensors`, bytes);
      await assert.rejects(
        readSafetensors(file),
        (error: XferError) => {
          assert.equal(error.code, 'CORRUPT_FILE', label);
          assert.match(error.message, message, label);
          return true;
        },
        label,
      );
    }
  });
});

describe('loading safetensors into a model', () => {
  let model: tf.LayersModel;
  let full: Buffer;
  before(async () => {
    model = await TorchvisionMobileNetV2({ weights: null, inputShape: [32, 32, 3] });
    // A torchvision-layout state dict made from the model's own weights, names by the map's inverse.
    const tensors: Record<string, Tensor> = {};
    const tv = NAME_MAPS.find((m) => m.name === 'torchvision-mobilenet_v2')!;
    const names = [
      'features.0.0.weight',
      'features.0.1.weight',
      'features.0.1.bias',
      'features.0.1.running_mean',
      'features.0.1.running_var',
      'features.0.1.num_batches_tracked',
    ];
    for (const name of names) {
      const mapped = tv.map(name);
      if (!mapped) {
        tensors[name] = { dtype: 'I64', shape: [], bytes: new Uint8Array(8) };
        continue;
      }
      const variable = model
        .getLayer(mapped.layer)
        .weights.find((w) => w.originalName.endsWith(mapped.weight))!;
      const shape = variable.shape as number[];
      const count = shape.reduce((a, b) => a * b, 1);
      const torchShape =
        mapped.transform === 'conv' ? [shape[3]!, shape[2]!, shape[0]!, shape[1]!] : shape;
      tensors[name] = {
        dtype: 'F32',
        shape: torchShape,
        bytes: f32(
          Array.from({ length: count }, (_, i) =>
            mapped.weight === 'moving_variance' ? 1 + i / count : i / count,
          ),
        ),
      };
    }
    // Enough names for detection: the head conv.
    tensors['features.18.0.weight'] = {
      dtype: 'F32',
      shape: [1280, 320, 1, 1],
      bytes: new Uint8Array(1280 * 320 * 4),
    };
    full = safetensors(tensors);
  });
  after(() => model.dispose());

  test('loads by name, transposed, and sets the batch norms to the source epsilon', async () => {
    const file = await write('partial.safetensors', full);
    const bn = model.getLayer('bn_Conv1') as unknown as { epsilon: number };
    bn.epsilon = 1e-3;
    await loadWeights(model, file);
    assert.equal(bn.epsilon, 1e-5);
    const kernel = model.getLayer('Conv1').getWeights()[0]!;
    assert.deepEqual(kernel.shape, [3, 3, 3, 32]);
    // torch [o=0, i=0, h=0, w=1] is value 1/864 and lands at HWIO [0, 1, 0, 0] = index 3*32.
    assert.equal(kernel.dataSync()[3 * 32], Math.fround(1 / 864));
    assert.equal(model.getLayer('Conv_1').getWeights()[0]!.dataSync()[5], 0);
  });

  test('an unknown layout or tensor is a clear error', async () => {
    const file = await write('partial.safetensors', full);
    await assert.rejects(loadWeights(model, file, { layout: 'vgg99' }), (error: XferError) => {
      assert.equal(error.code, 'UNKNOWN_NAME');
      assert.match(
        error.message,
        /unknown safetensors layout 'vgg99'. Known: torchvision-resnet50/,
      );
      return true;
    });
    const other = await write(
      'other.safetensors',
      safetensors({ 'encoder.weight': { dtype: 'F32', shape: [1], bytes: f32([1]) } }),
    );
    await assert.rejects(loadWeights(model, other), (error: XferError) => {
      assert.equal(error.code, 'UNSUPPORTED');
      assert.match(error.message, /not in a layout xfer knows/);
      return true;
    });
  });

  test('truncated and mutated files give XferErrors, never other errors', async () => {
    const bad = path.join(dir, 'bad.safetensors');
    for (const length of [0, 7, 9, 100, full.length >> 1, full.length - 1]) {
      await fsp.writeFile(bad, full.subarray(0, length));
      await assert.rejects(loadWeights(model, bad), (error: Error) => error.name === 'XferError');
    }
    let seed = 11;
    for (let i = 0; i < 30; i++) {
      const copy = Buffer.from(full);
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      // Mutate the header, where a change matters.
      copy[seed % Math.min(copy.length, 600)] = (seed >> 8) & 0xff;
      await fsp.writeFile(bad, copy);
      try {
        await loadWeights(model, bad);
      } catch (error) {
        assert.equal((error as Error).name, 'XferError', String(error));
      }
    }
  });
});

describe('pickle files are refused', () => {
  test('by extension, without opening the file', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
    for (const name of [
      'resnet50.pth',
      'model.pt',
      'pytorch_model.bin',
      'https://example.com/w.ckpt?x=1',
    ]) {
      await assert.rejects(loadWeights(model, name), (error: XferError) => {
        assert.equal(error.code, 'UNSUPPORTED');
        assert.match(error.message, /PyTorch pickle file.*never reads one.*save_file/);
        return true;
      });
    }
    const raw = await write('weights.dat', Buffer.from([0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0]));
    await assert.rejects(
      loadWeights(model, raw),
      (error: XferError) => error.code === 'UNSUPPORTED',
    );
    model.dispose();
  });
});

describe('hf: sources', () => {
  let server: TestServer;
  let body: Buffer;
  const saved = { endpoint: process.env.HF_ENDPOINT, home: process.env.XFER_HOME };
  before(async () => {
    const model = await TorchvisionMobileNetV2({ weights: null, inputShape: [32, 32, 3] });
    const tensors: Record<string, Tensor> = {
      'features.0.0.weight': {
        dtype: 'F32',
        shape: [32, 3, 3, 3],
        bytes: f32(Array.from({ length: 864 }, (_, i) => i)),
      },
      'features.18.0.weight': {
        dtype: 'F32',
        shape: [1280, 320, 1, 1],
        bytes: new Uint8Array(1280 * 320 * 4),
      },
    };
    model.dispose();
    body = safetensors(tensors);
    server = await startServer({
      '/acme/tiny-net/resolve/main/model.safetensors': (_req, res) => {
        res.writeHead(200, { 'content-length': body.length });
        res.end(body);
      },
    });
    process.env.HF_ENDPOINT = server.url;
    process.env.XFER_HOME = path.join(dir, 'home');
  });
  after(async () => {
    await server.close();
    for (const [key, value] of [
      ['HF_ENDPOINT', saved.endpoint],
      ['XFER_HOME', saved.home],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  test("hfUrl resolves to the Hub's resolve/main URL", () => {
    assert.deepEqual(hfUrl('hf:timm/resnet50.tv_in1k', 'https://huggingface.co'), {
      url: 'https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors',
      cacheName: 'timm--resnet50.tv_in1k--model.safetensors',
    });
    assert.equal(
      hfUrl('hf:a/b/sub/w.safetensors', 'https://h.co/').url,
      'https://h.co/a/b/resolve/main/sub/w.safetensors',
    );
    for (const bad of [
      'hf:',
      'hf:org',
      'hf:org/../x',
      'hf:org/repo/../../etc/passwd',
      'hf:/abs/x',
    ]) {
      assert.throws(
        () => hfUrl(bad),
        (error: XferError) => error.code === 'INVALID_ARGUMENT',
        bad,
      );
    }
  });

  test('downloads through getFile, checks the hash, caches', async () => {
    const model = await TorchvisionMobileNetV2({ weights: null, inputShape: [32, 32, 3] });
    const sha256 = createHash('sha256').update(body).digest('hex');
    await assert.rejects(
      loadWeights(model, 'hf:acme/tiny-net', { fileHash: '0'.repeat(64), skipMismatch: true }),
      (error: XferError) => error.code === 'HASH_MISMATCH',
    );
    await loadWeights(model, 'hf:acme/tiny-net', { fileHash: sha256 });
    assert.equal(model.getLayer('Conv1').getWeights()[0]!.dataSync()[32], 9); // HWIO [0,0,1,0] is torch [0,1,0,0], value 9
    const before = server.requests.length;
    await loadWeights(model, 'hf:acme/tiny-net', { fileHash: sha256 });
    assert.equal(server.requests.length, before, 'the second load comes from the cache');
    const cached = path.join(dir, 'home', 'huggingface', 'acme--tiny-net--model.safetensors');
    assert.ok((await fsp.stat(cached)).isFile());
    model.dispose();
  });
});

/**
 * Parity with PyTorch: torchvision's ResNet50 and MobileNetV2 with random weights (and random batch
 * norm statistics), saved as safetensors by a Python script, give the same logits in xfer's
 * torchvision-layout builders. Needs Debian's python3-torch and python3-torchvision; skipped,
 * saying so, where they are absent.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MobileNetV2 } from '../src/applications/mobilenet-v2.js';
import { ResNet50 } from '../src/applications/resnet.js';
import { TorchvisionMobileNetV2 } from '../src/applications/torchvision-mobilenet-v2.js';
import { TorchvisionResNet50 } from '../src/applications/torchvision-resnet.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import type { XferError } from '../src/errors.js';
import { loadWeights } from '../src/weights/index.js';
import { captureStderr } from './helpers/weights-fixtures.js';

const SIZE = 64;

function findPython(): string | undefined {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(python, ['-c', 'import torch, torchvision'], { stdio: 'ignore' });
    if (probe.status === 0) return python;
  }
  return undefined;
}

const python = findPython();
const skip = python
  ? false
  : 'python3 with torch and torchvision not found (apt-get install python3-torch python3-torchvision)';
if (skip) console.log(`# skipping PyTorch parity tests: ${skip}`);

// Writes safetensors by hand (Debian has no python3-safetensors): header JSON, then raw bytes.
const SCRIPT = `
import json, struct, sys
import torch, torchvision
out, size = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)

def save(sd, path, dtype=torch.float32):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        v = v.detach().contiguous()
        if v.is_floating_point():
            v = v.to(dtype)
            dt = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16'}[dtype]
            b = (v.view(torch.int16) if dtype != torch.float32 else v).numpy().tobytes()
        else:
            dt, b = 'I64', v.to(torch.int64).numpy().tobytes()
        header[k] = {'dtype': dt, 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

def randomize(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    return model

def timm_mobilenet_names(sd):
    stages = [1, 2, 3, 4, 3, 3, 1]
    where = []
    for s, n in enumerate(stages):
        where += [(s, i) for i in range(n)]
    fixed = {}
    for k, v in sd.items():
        p = k.split('.')
        if k.startswith('features.0.0.'): nk = 'conv_stem.' + p[-1]
        elif k.startswith('features.0.1.'): nk = 'bn1.' + p[-1]
        elif k.startswith('features.18.0.'): nk = 'conv_head.' + p[-1]
        elif k.startswith('features.18.1.'): nk = 'bn2.' + p[-1]
        elif k.startswith('classifier.1.'): nk = 'classifier.' + p[-1]
        else:
            f = int(p[1]); s, i = where[f - 1]
            part = '.'.join(p[3:-1])
            if f == 1:
                names = {'0.0': 'conv_dw', '0.1': 'bn1', '1': 'conv_pw', '2': 'bn2'}
            else:
                names = {'0.0': 'conv_pw', '0.1': 'bn1', '1.0': 'conv_dw', '1.1': 'bn2', '2': 'conv_pwl', '3': 'bn3'}
            nk = 'blocks.%d.%d.%s.%s' % (s, i, names[part], p[-1])
        fixed[nk] = v
    return fixed

x = torch.rand(2, 3, size, size) * 2 - 1
x.numpy().astype('<f4').tofile(out + '/input.bin')
with torch.no_grad():
    resnet = randomize(torchvision.models.resnet50())
    save(resnet.state_dict(), out + '/resnet50.safetensors')
    resnet(x).numpy().astype('<f4').tofile(out + '/resnet50.logits')
    mobilenet = randomize(torchvision.models.mobilenet_v2())
    save(mobilenet.state_dict(), out + '/mobilenet_v2.safetensors')
    save(timm_mobilenet_names(mobilenet.state_dict()), out + '/mobilenet_v2_timm_f16.safetensors', torch.float16)
    mobilenet(x).numpy().astype('<f4').tofile(out + '/mobilenet_v2.logits')
    m16 = randomize(torchvision.models.mobilenet_v2())
    m16.load_state_dict({k: (v.half().float() if v.is_floating_point() else v) for k, v in mobilenet.state_dict().items()})
    m16.eval()
    m16(x).numpy().astype('<f4').tofile(out + '/mobilenet_v2_f16.logits')
`;

let dir: string;
let input: tf.Tensor;
before(async () => {
  if (skip) return;
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-torch-parity-'));
  execFileSync(python!, ['-c', SCRIPT, dir, String(SIZE)], { stdio: 'inherit' });
  const nchw = new Float32Array((await fsp.readFile(path.join(dir, 'input.bin'))).buffer.slice(0));
  input = tf.tidy(() => tf.transpose(tf.tensor4d(nchw, [2, 3, SIZE, SIZE]), [0, 2, 3, 1]));
});
after(async () => {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

async function logits(file: string): Promise<Float32Array> {
  const bytes = await fsp.readFile(path.join(dir, file));
  return new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
}

function compare(model: tf.LayersModel, expected: Float32Array, label: string): number {
  const actual = tf.tidy(() => (model.predict(input) as tf.Tensor).dataSync() as Float32Array);
  assert.equal(actual.length, expected.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    diff = Math.max(diff, Math.abs(expected[i]! - actual[i]!));
  }
  console.log(
    `# ${label}: max |logit| ${scale.toPrecision(4)}, max abs diff ${diff.toExponential(2)}`,
  );
  assert.ok(scale > 0.1, `${label}: logits should not be trivial`);
  assert.ok(
    diff <= 1e-4 * scale,
    `${label}: max abs diff ${diff} over 1e-4 of the output scale ${scale}`,
  );
  return diff;
}

describe('torchvision safetensors parity', { skip }, () => {
  test('ResNet50 (torchvision layout, v1.5 strides, symmetric padding) gives the same logits', async () => {
    const model = await TorchvisionResNet50({
      weights: null,
      inputShape: [SIZE, SIZE, 3],
      classifierActivation: null,
    });
    // PyTorch counts 25,557,032 parameters; tfjs also counts the 2 x 26,560 batch norm statistics.
    assert.equal(model.countParams(), 25_557_032 + 2 * 26_560);
    await loadWeights(model, path.join(dir, 'resnet50.safetensors'));
    compare(model, await logits('resnet50.logits'), 'resnet50');
    model.dispose();
  });

  test('MobileNetV2 (torchvision layout) gives the same logits', async () => {
    const model = await TorchvisionMobileNetV2({
      weights: path.join(dir, 'mobilenet_v2.safetensors'),
      inputShape: [SIZE, SIZE, 3],
      classifierActivation: null,
    });
    assert.equal(model.countParams(), 3_504_872 + 2 * 17_056);
    compare(model, await logits('mobilenet_v2.logits'), 'mobilenet_v2');
    model.dispose();
  });

  test('MobileNetV2 in timm names and float16 gives the float16-rounded model logits', async () => {
    const model = await TorchvisionMobileNetV2({
      weights: null,
      inputShape: [SIZE, SIZE, 3],
      classifierActivation: null,
    });
    await loadWeights(model, path.join(dir, 'mobilenet_v2_timm_f16.safetensors'));
    compare(model, await logits('mobilenet_v2_f16.logits'), 'mobilenet_v2 timm f16');
    model.dispose();
  });

  test("Keras's MobileNetV2 takes the weights (same layers) but warns, and its padding changes the logits", async () => {
    const model = await MobileNetV2({
      weights: null,
      inputShape: [SIZE, SIZE, 3],
      classifierActivation: null,
    });
    const { stderr } = await captureStderr(() =>
      loadWeights(model, path.join(dir, 'mobilenet_v2.safetensors')),
    );
    assert.match(stderr, /not built with TorchvisionMobileNetV2; its padding differs/);
    const expected = await logits('mobilenet_v2.logits');
    const actual = tf.tidy(() => (model.predict(input) as tf.Tensor).dataSync() as Float32Array);
    const scale = Math.max(...expected.map(Math.abs));
    const diff = Math.max(...expected.map((v, i) => Math.abs(v - actual[i]!)));
    console.log(
      `# Keras MobileNetV2 with torchvision weights: max abs diff ${diff.toExponential(2)}`,
    );
    // The parity tests pass at 1e-4 of the scale; this one must fail that by a wide margin.
    assert.ok(diff > 5e-4 * scale, 'asymmetric padding should change the logits');
    model.dispose();
  });

  test("Keras's ResNet50 refuses a torchvision state dict and names the builder to use", async () => {
    const model = await ResNet50({ weights: null, inputShape: [SIZE, SIZE, 3] });
    await assert.rejects(
      loadWeights(model, path.join(dir, 'resnet50.safetensors')),
      (error: XferError) => {
        assert.equal(error.code, 'WEIGHTS_MISMATCH');
        assert.match(
          error.message,
          /torchvision-resnet50 layout; build the model with TorchvisionResNet50/,
        );
        return true;
      },
    );
    model.dispose();
  });
});

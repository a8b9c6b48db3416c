/**
 * PyTorch state-dict names (torchvision's and timm's) mapped to Keras's layer and weight names, with
 * the transpose each tensor needs for tfjs's layouts: a conv kernel OIHW -> HWIO, a depthwise
 * kernel [C, 1, kh, kw] -> [kh, kw, C, 1], a Linear weight [out, in] -> [in, out]. One map per
 * architecture; the Keras names are those of xfer's builders, so the same file loads into the
 * torchvision-layout builders (`TorchvisionResNet50`, `TorchvisionMobileNetV2`).
 */

export type Transform = 'conv' | 'depthwise' | 'dense' | 'none';

export interface MappedName {
  /** Keras layer name, e.g. `conv2_block1_1_conv`. */
  readonly layer: string;
  /** Keras weight name, e.g. `kernel`, `gamma`, `moving_variance`. */
  readonly weight: string;
  readonly transform: Transform;
}

export interface NameMap {
  /** `'torchvision-resnet50'`, `'timm-mobilenetv2'`... */
  readonly name: string;
  /** Whether a file with these tensor names is in this layout. */
  detect(names: ReadonlySet<string>): boolean;
  /** The Keras name of a tensor; `null` for a tensor to skip (BN's `num_batches_tracked`); undefined when unknown. */
  map(name: string): MappedName | null | undefined;
  /** BatchNorm epsilon of the source framework's layers of this architecture. */
  readonly bnEpsilon: number;
  /** The xfer builder that reproduces the source network exactly. */
  readonly builder: string;
  /** A layer only that builder has (its PyTorch-style padding), to tell its models apart. */
  readonly builderMarker: string;
}

const BN_WEIGHTS: Record<string, string> = {
  weight: 'gamma',
  bias: 'beta',
  running_mean: 'moving_mean',
  running_var: 'moving_variance',
};

/** `prefix.weight` of a BatchNorm2d, or `null` for its step counter. */
function bn(layer: string, param: string): MappedName | null | undefined {
  if (param === 'num_batches_tracked') return null;
  const weight = BN_WEIGHTS[param];
  return weight === undefined ? undefined : { layer, weight, transform: 'none' };
}

function conv(layer: string, param: string, depthwise = false): MappedName | undefined {
  if (param === 'weight') {
    return {
      layer,
      weight: depthwise ? 'depthwise_kernel' : 'kernel',
      transform: depthwise ? 'depthwise' : 'conv',
    };
  }
  if (param === 'bias') return { layer, weight: 'bias', transform: 'none' };
  return undefined;
}

function dense(layer: string, param: string): MappedName | undefined {
  if (param === 'weight') return { layer, weight: 'kernel', transform: 'dense' };
  if (param === 'bias') return { layer, weight: 'bias', transform: 'none' };
  return undefined;
}

/** torchvision's (and timm's, which keeps them) ResNet names: `layer1.0.conv1.weight`... */
const RESNET50_BLOCKS = [3, 4, 6, 3];

function mapResNet(name: string): MappedName | null | undefined {
  let m = /^(conv1)\.(weight)$/.exec(name);
  if (m) return conv('conv1_conv', m[2]!);
  m = /^bn1\.(\w+)$/.exec(name);
  if (m) return bn('conv1_bn', m[1]!);
  m = /^fc\.(weight|bias)$/.exec(name);
  if (m) return dense('predictions', m[1]!);
  m = /^layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(\w+)$/.exec(name);
  if (!m) return undefined;
  const stage = Number(m[1]);
  const block = Number(m[2]);
  if (block >= RESNET50_BLOCKS[stage - 1]!) return undefined;
  const prefix = `conv${stage + 1}_block${block + 1}`;
  const part = m[3]!;
  const param = m[4]!;
  if (part === 'downsample.0') return conv(`${prefix}_0_conv`, param);
  if (part === 'downsample.1') return bn(`${prefix}_0_bn`, param);
  const index = part.slice(-1);
  return part.startsWith('conv')
    ? conv(`${prefix}_${index}_conv`, param)
    : bn(`${prefix}_${index}_bn`, param);
}

/** The Keras prefix of MobileNetV2 block `id` (1..16); block 0 is Keras's `expanded_conv_`. */
function mobilenetV2Block(id: number): string {
  return id === 0 ? 'expanded_conv_' : `block_${id}_`;
}

/** torchvision: `features.0` stem, `features.1..17` blocks, `features.18` head, `classifier.1`. */
function mapTorchvisionMobileNetV2(name: string): MappedName | null | undefined {
  let m = /^features\.0\.0\.weight$/.exec(name);
  if (m) return conv('Conv1', 'weight');
  m = /^features\.0\.1\.(\w+)$/.exec(name);
  if (m) return bn('bn_Conv1', m[1]!);
  m = /^features\.18\.0\.weight$/.exec(name);
  if (m) return conv('Conv_1', 'weight');
  m = /^features\.18\.1\.(\w+)$/.exec(name);
  if (m) return bn('Conv_1_bn', m[1]!);
  m = /^classifier\.1\.(weight|bias)$/.exec(name);
  if (m) return dense('predictions', m[1]!);
  m = /^features\.(\d+)\.conv\.(\d)(?:\.(\d))?\.(\w+)$/.exec(name);
  if (!m) return undefined;
  const feature = Number(m[1]);
  if (feature < 1 || feature > 17) return undefined;
  const p = mobilenetV2Block(feature - 1);
  const key = m[3] === undefined ? m[2]! : `${m[2]}.${m[3]}`;
  const param = m[4]!;
  // Block 0 (no expansion): conv.0 = depthwise ConvBNReLU, conv.1 = project, conv.2 = its BN.
  const parts: Record<string, [string, 'conv' | 'depthwise' | 'bn']> =
    feature === 1
      ? {
          '0.0': [`${p}depthwise`, 'depthwise'],
          '0.1': [`${p}depthwise_BN`, 'bn'],
          '1': [`${p}project`, 'conv'],
          '2': [`${p}project_BN`, 'bn'],
        }
      : {
          '0.0': [`${p}expand`, 'conv'],
          '0.1': [`${p}expand_BN`, 'bn'],
          '1.0': [`${p}depthwise`, 'depthwise'],
          '1.1': [`${p}depthwise_BN`, 'bn'],
          '2': [`${p}project`, 'conv'],
          '3': [`${p}project_BN`, 'bn'],
        };
  const target = parts[key];
  if (!target) return undefined;
  const [layer, kind] = target;
  return kind === 'bn' ? bn(layer, param) : conv(layer, param, kind === 'depthwise');
}

/** timm's `mobilenetv2_100` stage sizes: block ids are counted across stages. */
const TIMM_MOBILENETV2_STAGES = [1, 2, 3, 4, 3, 3, 1];

/** timm: `conv_stem`, `bn1`, `blocks.<stage>.<i>.{conv_pw,bn1,conv_dw,bn2,conv_pwl,bn3}`, `conv_head`, `bn2`, `classifier`. */
function mapTimmMobileNetV2(name: string): MappedName | null | undefined {
  let m = /^conv_stem\.weight$/.exec(name);
  if (m) return conv('Conv1', 'weight');
  m = /^bn1\.(\w+)$/.exec(name);
  if (m) return bn('bn_Conv1', m[1]!);
  m = /^conv_head\.weight$/.exec(name);
  if (m) return conv('Conv_1', 'weight');
  m = /^bn2\.(\w+)$/.exec(name);
  if (m) return bn('Conv_1_bn', m[1]!);
  m = /^classifier\.(weight|bias)$/.exec(name);
  if (m) return dense('predictions', m[1]!);
  m = /^blocks\.(\d)\.(\d)\.(conv_pw|conv_dw|conv_pwl|bn1|bn2|bn3)\.(\w+)$/.exec(name);
  if (!m) return undefined;
  const stage = Number(m[1]);
  const index = Number(m[2]);
  if (stage >= TIMM_MOBILENETV2_STAGES.length || index >= TIMM_MOBILENETV2_STAGES[stage]!)
    return undefined;
  const id = TIMM_MOBILENETV2_STAGES.slice(0, stage).reduce((a, b) => a + b, 0) + index;
  const p = mobilenetV2Block(id);
  const part = m[3]!;
  const param = m[4]!;
  // Stage 0 is timm's DepthwiseSeparableConv (conv_dw, bn1, conv_pw, bn2); the rest are
  // InvertedResidual (conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3).
  const parts: Record<string, [string, 'conv' | 'depthwise' | 'bn']> =
    id === 0
      ? {
          conv_dw: [`${p}depthwise`, 'depthwise'],
          bn1: [`${p}depthwise_BN`, 'bn'],
          conv_pw: [`${p}project`, 'conv'],
          bn2: [`${p}project_BN`, 'bn'],
        }
      : {
          conv_pw: [`${p}expand`, 'conv'],
          bn1: [`${p}expand_BN`, 'bn'],
          conv_dw: [`${p}depthwise`, 'depthwise'],
          bn2: [`${p}depthwise_BN`, 'bn'],
          conv_pwl: [`${p}project`, 'conv'],
          bn3: [`${p}project_BN`, 'bn'],
        };
  const target = parts[part];
  if (!target) return undefined;
  const [layer, kind] = target;
  return kind === 'bn' ? bn(layer, param) : conv(layer, param, kind === 'depthwise');
}

/** Every layout xfer knows, tried in order. */
export const NAME_MAPS: readonly NameMap[] = [
  {
    name: 'torchvision-resnet50',
    // timm's resnet50 keeps torchvision's names; both use BatchNorm2d's default epsilon.
    detect: (names) =>
      names.has('conv1.weight') &&
      names.has('layer1.0.conv3.weight') &&
      names.has('layer3.5.conv1.weight') &&
      !names.has('layer3.6.conv1.weight') &&
      !names.has('layer4.3.conv1.weight'),
    map: mapResNet,
    bnEpsilon: 1e-5,
    builder: 'TorchvisionResNet50',
    builderMarker: 'conv2_block1_2_pad',
  },
  {
    name: 'torchvision-mobilenet_v2',
    detect: (names) => names.has('features.0.0.weight') && names.has('features.18.0.weight'),
    map: mapTorchvisionMobileNetV2,
    bnEpsilon: 1e-5,
    builder: 'TorchvisionMobileNetV2',
    builderMarker: 'Conv1_pad',
  },
  {
    name: 'timm-mobilenetv2',
    detect: (names) =>
      names.has('conv_stem.weight') &&
      names.has('blocks.0.0.conv_dw.weight') &&
      names.has('blocks.6.0.conv_pwl.weight'),
    map: mapTimmMobileNetV2,
    bnEpsilon: 1e-5,
    builder: 'TorchvisionMobileNetV2',
    builderMarker: 'Conv1_pad',
  },
];

/** Reorders `values` of PyTorch `shape` into tfjs's layout; returns the new values and shape. */
export function transformTensor(
  values: Float32Array,
  shape: readonly number[],
  transform: Transform,
): { values: Float32Array; shape: number[] } {
  if (transform === 'none') return { values, shape: [...shape] };
  if (transform === 'dense') {
    const [outs, ins] = shape as [number, number];
    const out = new Float32Array(values.length);
    for (let o = 0; o < outs; o++)
      for (let i = 0; i < ins; i++) out[i * outs + o] = values[o * ins + i]!;
    return { values: out, shape: [ins, outs] };
  }
  const [o, i, kh, kw] = shape as [number, number, number, number];
  const out = new Float32Array(values.length);
  if (transform === 'depthwise') {
    // [C, 1, kh, kw] -> [kh, kw, C, 1]
    for (let c = 0; c < o; c++)
      for (let h = 0; h < kh; h++)
        for (let w = 0; w < kw; w++) out[(h * kw + w) * o + c] = values[(c * kh + h) * kw + w]!;
    return { values: out, shape: [kh, kw, o, 1] };
  }
  // OIHW -> HWIO
  for (let a = 0; a < o; a++)
    for (let b = 0; b < i; b++)
      for (let h = 0; h < kh; h++)
        for (let w = 0; w < kw; w++)
          out[((h * kw + w) * i + b) * o + a] = values[((a * i + b) * kh + h) * kw + w]!;
  return { values: out, shape: [kh, kw, i, o] };
}

/** The rank each transform expects, to refuse a tensor of the wrong rank with a clear message. */
export const TRANSFORM_RANK: Record<Transform, number | undefined> = {
  conv: 4,
  depthwise: 4,
  dense: 2,
  none: undefined,
};

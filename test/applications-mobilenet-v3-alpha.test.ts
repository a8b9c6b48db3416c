/**
 * MobileNetV3 at widths other than ImageNet's 0.75 and 1.0: Keras's builders take any `alpha`,
 * rounding each width with `_depth` (the nearest multiple of 8, at least 8, never more than 10%
 * below). The parameter counts below come from Keras's own formula, written out here layer by
 * layer from `keras/src/applications/mobilenet_v3.py` (conv, conv_bn; per block: expand + BN
 * (not in block 0), depthwise + BN, squeeze-excite convs with biases, project + BN; conv_1 +
 * BN; conv_2 and logits with biases; BatchNormalization counts 4 numbers per channel). The formula
 * is checked first against Keras's published counts at alpha 1.0.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { MobileNetV3Large, MobileNetV3Small } from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import { countParams } from '../src/engine/index.js';

/** Keras's `_depth(v, divisor=8)`. */
function depth(v: number, divisor = 8): number {
  let rounded = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

/** expansion, filters, kernel ('k': 5, or 3 when minimalistic), squeeze-excite. */
type Row = [number, number, 3 | 'k', boolean];
const SMALL: Row[] = [
  [1, 16, 3, true],
  [72 / 16, 24, 3, false],
  [88 / 24, 24, 3, false],
  [4, 40, 'k', true],
  [6, 40, 'k', true],
  [6, 40, 'k', true],
  [3, 48, 'k', true],
  [3, 48, 'k', true],
  [6, 96, 'k', true],
  [6, 96, 'k', true],
  [6, 96, 'k', true],
];
const LARGE: Row[] = [
  [1, 16, 3, false],
  [4, 24, 3, false],
  [3, 24, 3, false],
  [3, 40, 'k', true],
  [3, 40, 'k', true],
  [3, 40, 'k', true],
  [6, 80, 3, false],
  [2.5, 80, 3, false],
  [2.3, 80, 3, false],
  [2.3, 80, 3, false],
  [6, 112, 3, true],
  [6, 112, 3, true],
  [6, 160, 'k', true],
  [6, 160, 'k', true],
  [6, 160, 'k', true],
];

function kerasCount(
  type: 'small' | 'large',
  alpha: number,
  minimalistic: boolean,
  top: boolean,
): number {
  const rows = type === 'small' ? SMALL : LARGE;
  const kernel = minimalistic ? 3 : 5;
  let params = 3 * 3 * 3 * 16 + 4 * 16;
  let channels = 16;
  rows.forEach(([expansion, baseFilters, k, se], block) => {
    const size = k === 'k' ? kernel : k;
    const filters = depth(baseFilters * alpha);
    const expanded = depth(channels * expansion);
    if (block > 0) params += channels * expanded + 4 * expanded;
    params += size * size * expanded + 4 * expanded;
    if (se && !minimalistic) {
      const squeezed = depth(expanded * 0.25);
      params += expanded * squeezed + squeezed + squeezed * expanded + expanded;
    }
    params += expanded * filters + 4 * filters;
    channels = filters;
  });
  const lastConv = depth(channels * 6);
  params += channels * lastConv + 4 * lastConv;
  let lastPoint = type === 'small' ? 1024 : 1280;
  if (alpha > 1.0) lastPoint = depth(lastPoint * alpha);
  if (top) params += lastConv * lastPoint + lastPoint + lastPoint * 1000 + 1000;
  return params;
}

before(async () => {
  await initBackend();
});

test("the formula gives Keras's published counts at alpha 1.0", () => {
  assert.equal(kerasCount('small', 1.0, false, true), 2_554_968);
  assert.equal(kerasCount('small', 1.0, false, false), 939_120);
  assert.equal(kerasCount('large', 1.0, false, true), 5_507_432);
  assert.equal(kerasCount('large', 1.0, false, false), 2_996_352);
});

const CASES: {
  type: 'small' | 'large';
  alpha: number;
  minimalistic: boolean;
  top: boolean;
  expected: number;
}[] = [
  { type: 'small', alpha: 0.5, minimalistic: false, top: true, expected: 1_599_720 },
  { type: 'small', alpha: 0.5, minimalistic: false, top: false, expected: 278_784 },
  { type: 'small', alpha: 1.25, minimalistic: true, top: true, expected: 2_886_208 },
  { type: 'large', alpha: 0.5, minimalistic: false, top: false, expected: 805_832 },
  { type: 'large', alpha: 1.25, minimalistic: false, top: true, expected: 8_286_760 },
];

for (const c of CASES) {
  const label = `MobileNetV3${c.type === 'small' ? 'Small' : 'Large'}({ alpha: ${c.alpha}${c.minimalistic ? ', minimalistic: true' : ''}${c.top ? '' : ', includeTop: false'} })`;
  test(`${label}: ${c.expected.toLocaleString('en-US')} parameters, as Keras's formula`, async () => {
    assert.equal(kerasCount(c.type, c.alpha, c.minimalistic, c.top), c.expected);
    const build = c.type === 'small' ? MobileNetV3Small : MobileNetV3Large;
    const model = await build({
      alpha: c.alpha,
      minimalistic: c.minimalistic,
      includeTop: c.top,
      weights: null,
    });
    assert.equal(countParams(model).totalParams, c.expected);
    model.dispose();
  });
}

test('alpha 1.25 widens the last point-wise layer (conv_2), alpha 0.5 does not narrow it', async () => {
  const wide = await MobileNetV3Large({ alpha: 1.25, weights: null });
  const narrow = await MobileNetV3Large({ alpha: 0.5, weights: null });
  // _depth(1280 * 1.25) = 1600; Keras keeps 1280 below alpha 1.
  assert.equal(wide.getLayer('conv_2').getWeights()[1]!.shape[0], 1600);
  assert.equal(narrow.getLayer('conv_2').getWeights()[1]!.shape[0], 1280);
  wide.dispose();
  narrow.dispose();
});

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { ImageDataGenerator, type TransformParams } from '../src/data/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

before(async () => {
  await initBackend();
});

/** Runs applyTransform on an [h, w, c] array given as flat values and returns flat values. */
function transform(
  gen: ImageDataGenerator,
  values: number[],
  shape: [number, number, number],
  params: Partial<TransformParams>,
): number[] {
  const x = tf.tensor3d(values, shape);
  const y = gen.applyTransform(x, params);
  const out = [...y.dataSync()];
  tf.dispose([x, y]);
  return out;
}

function assertClose(actual: number[], expected: number[], tolerance = 1e-4, message?: string) {
  assert.equal(actual.length, expected.length, message);
  actual.forEach((v, i) => {
    assert.ok(
      Math.abs(v - expected[i]!) <= tolerance,
      `${message ?? ''} index ${i}: ${v} vs ${expected[i]}`,
    );
  });
}

/** A 5x5 single-channel image whose pixel (r, c) holds r * 5 + c: every pixel distinct. */
const grid = Array.from({ length: 25 }, (_, i) => i);

test('flips mirror columns (horizontal) and rows (vertical) exactly', () => {
  const gen = new ImageDataGenerator();
  const x = [1, 2, 3, 4, 5, 6]; // 2 rows x 3 columns
  assert.deepEqual(transform(gen, x, [2, 3, 1], { flipHorizontal: true }), [3, 2, 1, 6, 5, 4]);
  assert.deepEqual(transform(gen, x, [2, 3, 1], { flipVertical: true }), [4, 5, 6, 1, 2, 3]);
  assert.deepEqual(transform(gen, x, [2, 3, 1], {}), x);
});

test('theta = 90 turns the image counter-clockwise, as Keras does', () => {
  // Keras's matrix (after its P·M·P swap) reads input (col, row) = R(90°)·(c - 2, r - 2) + centre
  // for output (r, c) of a 5x5 image: col_in = 2 - (r - 2) = 4 - r, row_in = c. So out[r][c] =
  // in[c][4 - r]: the right-hand column becomes the top row (counter-clockwise on screen).
  const gen = new ImageDataGenerator();
  const expected = Array.from({ length: 25 }, (_, i) => {
    const r = Math.floor(i / 5);
    const c = i % 5;
    return c * 5 + (4 - r);
  });
  assertClose(transform(gen, grid, [5, 5, 1], { theta: 90 }), expected);
});

test("tx and ty shift content left and up by that many pixels (Keras's axes)", () => {
  // Output (r, c) reads input (r + ty, c + tx): a dot at (3, 3) shows at (3 - ty, 3 - tx).
  // Keras draws tx from heightShiftRange, so in Keras heightShiftRange moves images sideways.
  const gen = new ImageDataGenerator({ fillMode: 'constant' });
  const dot = new Array(49).fill(0);
  dot[3 * 7 + 3] = 100;
  const where = (values: number[]) =>
    values.flatMap((v, i) => (v > 0 ? [[Math.floor(i / 7), i % 7, v]] : []));
  assert.deepEqual(where(transform(gen, dot, [7, 7, 1], { tx: 2 })), [[3, 1, 100]]);
  assert.deepEqual(where(transform(gen, dot, [7, 7, 1], { tx: -2 })), [[3, 5, 100]]);
  assert.deepEqual(where(transform(gen, dot, [7, 7, 1], { ty: 2 })), [[1, 3, 100]]);
  assert.deepEqual(where(transform(gen, dot, [7, 7, 1], { tx: 1, ty: -3 })), [[6, 2, 100]]);
});

test('zx = 2 zooms out along columns about the centre', () => {
  // Output column c reads input column 2 + 2 (c - 2) = 2c - 2: -2, 0, 2, 4, 6; with fillMode
  // 'nearest' -2 -> 0 and 6 -> 4. A horizontal ramp (value = 10 * column) becomes 0,0,20,40,40.
  const gen = new ImageDataGenerator({ fillMode: 'nearest' });
  const ramp = Array.from({ length: 25 }, (_, i) => (i % 5) * 10);
  const row = [0, 0, 20, 40, 40];
  assertClose(transform(gen, ramp, [5, 5, 1], { zx: 2 }), [...row, ...row, ...row, ...row, ...row]);
  // zy acts on rows: a vertical ramp (10 * row) zoomed by zy = 2 gives rows 0,0,20,40,40.
  const vertical = Array.from({ length: 25 }, (_, i) => Math.floor(i / 5) * 10);
  const zoomed = transform(gen, vertical, [5, 5, 1], { zy: 2 });
  assertClose(
    zoomed,
    [0, 0, 20, 40, 40].flatMap((v) => [v, v, v, v, v]),
  );
});

test('fill modes at the border follow scipy.ndimage (order 1)', () => {
  // One row [0, 10, 20, 30, 40]; a shift of tx reads column c + tx. scipy's rules, by hand:
  // constant: outside [0, 4] -> cval. nearest: clamp. reflect: about -0.5 and 4.5 (x -> -x - 1,
  // x -> 9 - x) with edge taps reflected too. wrap: period len - 1 = 4 (scipy's 'wrap', not
  // 'grid-wrap'). Same values as scipy 1.10's affine_transform on this row.
  const row = [0, 10, 20, 30, 40];
  const cases: [string, number, number[]][] = [
    ['constant', -1.5, [-1, -1, 5, 15, 25]],
    ['nearest', -1.5, [0, 0, 5, 15, 25]],
    ['reflect', -1.5, [5, 0, 5, 15, 25]], // -1.5 -> 0.5; -0.5 -> -0.5, both taps read x[0]
    ['wrap', -1.5, [25, 35, 5, 15, 25]], // -1.5 + 4 = 2.5; -0.5 + 4 = 3.5
    ['constant', 1.5, [15, 25, 35, -1, -1]],
    ['nearest', 1.5, [15, 25, 35, 40, 40]],
    ['reflect', 1.5, [15, 25, 35, 40, 35]], // 4.5 stays (taps 4, 5 -> 4); 5.5 -> 3.5
    ['wrap', 1.5, [15, 25, 35, 5, 15]], // 4.5 - 4 = 0.5; 5.5 - 4 = 1.5
  ];
  for (const [fillMode, tx, expected] of cases) {
    const gen = new ImageDataGenerator({ fillMode: fillMode as never, cval: -1 });
    assertClose(transform(gen, row, [1, 5, 1], { tx }), expected, 1e-4, `${fillMode} tx=${tx}`);
  }
});

test('a combined transform on a non-square image matches Keras + scipy', () => {
  // Reference: keras_preprocessing's apply_affine_transform(x, theta=30, tx=0.7, ty=-1.2,
  // shear=10, zx=1.2, zy=0.9, row_axis=0, col_axis=1, channel_axis=2, order=1) with scipy 1.10,
  // x = arange(40).reshape(4, 5, 2) * 3 as float32, rounded to 4 decimals.
  const x = Array.from({ length: 40 }, (_, i) => i * 3);
  const params = { theta: 30, tx: 0.7, ty: -1.2, shear: 10, zx: 1.2, zy: 0.9 };
  const reflect = [
    13.8263, 16.8263, 20.0617, 23.0617, 30.9567, 33.9567, 46.4242, 49.4242, 58.1888, 61.1888,
    10.3553, 13.3553, 26.2306, 29.2306, 50.4659, 53.4659, 69.6399, 72.6399, 82.3431, 85.3431,
    19.2073, 22.2073, 43.4427, 46.4427, 67.6781, 70.6781, 90.3231, 93.3231, 106.4973, 109.4973,
    36.4195, 39.4195, 60.6548, 63.6548, 84.8902, 87.8902, 109.1256, 112.1256, 114, 117,
  ];
  const c = -5;
  const constant = [
    c,
    c,
    c,
    c,
    c,
    c,
    c,
    c,
    c,
    c,
    c,
    c,
    26.2306,
    29.2306,
    50.4659,
    53.4659,
    c,
    c,
    c,
    c,
    19.2073,
    22.2073,
    43.4427,
    46.4427,
    67.6781,
    70.6781,
    c,
    c,
    c,
    c,
    36.4195,
    39.4195,
    60.6548,
    63.6548,
    84.8902,
    87.8902,
    109.1256,
    112.1256,
    c,
    c,
  ];
  assertClose(
    transform(new ImageDataGenerator({ fillMode: 'reflect' }), x, [4, 5, 2], params),
    reflect,
    1e-3,
    'reflect',
  );
  assertClose(
    transform(new ImageDataGenerator({ fillMode: 'constant', cval: c }), x, [4, 5, 2], params),
    constant,
    1e-3,
    'constant',
  );
});

test('channel shift adds one intensity to all channels, clipped to the image min and max', () => {
  const gen = new ImageDataGenerator();
  assert.deepEqual(
    transform(gen, [10, 50, 90], [1, 1, 3], { channelShiftIntensity: 30 }),
    [40, 80, 90],
  );
  assert.deepEqual(
    transform(gen, [10, 50, 90], [1, 1, 3], { channelShiftIntensity: -50 }),
    [10, 10, 40],
  );
});

test("brightness goes through PIL's 8-bit ImageEnhance.Brightness, as Keras", () => {
  const gen = new ImageDataGenerator();
  // In range: bytes truncated (100.7 -> 100), times 1.5, truncated and clipped: 150, 255, 4.
  assert.deepEqual(transform(gen, [100.7, 200, 3], [1, 3, 1], { brightness: 1.5 }), [150, 255, 4]);
  // RGBA keeps alpha.
  assert.deepEqual(
    transform(gen, [100, 200, 50, 128], [1, 1, 4], { brightness: 1.5 }),
    [150, 255, 75, 128],
  );
  // Out of range [-10, 300]: stretched to bytes 0, 8, 90, 255, halved to 0, 4, 45, 127, mapped
  // back with v / 255 * 310 - 10 (Keras's apply_brightness_shift(x, 0.5, scale=False)).
  assertClose(
    transform(gen, [-10, 0, 100, 300], [1, 4, 1], { brightness: 0.5 }),
    [-10, -5.13725, 44.70588, 144.39215],
  );
});

test("getRandomTransform draws Keras's parameters within range, reproducibly with a seed", () => {
  const gen = new ImageDataGenerator({
    rotationRange: 40,
    widthShiftRange: 0.2,
    heightShiftRange: 0.1,
    shearRange: 5,
    zoomRange: 0.2,
    horizontalFlip: true,
    channelShiftRange: 10,
    brightnessRange: [0.5, 1.5],
  });
  assert.deepEqual(
    gen.getRandomTransform([100, 200, 3], 7),
    gen.getRandomTransform([100, 200, 3], 7),
  );
  assert.notDeepEqual(
    gen.getRandomTransform([100, 200, 3], 7),
    gen.getRandomTransform([100, 200, 3], 8),
  );
  let flips = 0;
  const n = 2000;
  for (let seed = 0; seed < n; seed++) {
    const p = gen.getRandomTransform([100, 200, 3], seed);
    assert.ok(Math.abs(p.theta) <= 40);
    assert.ok(Math.abs(p.tx) <= 0.1 * 100, `tx ${p.tx} is a fraction of the height (100)`);
    assert.ok(Math.abs(p.ty) <= 0.2 * 200, `ty ${p.ty} is a fraction of the width (200)`);
    assert.ok(Math.abs(p.shear) <= 5);
    assert.ok(p.zx >= 0.8 && p.zx <= 1.2 && p.zy >= 0.8 && p.zy <= 1.2);
    assert.ok(p.channelShiftIntensity !== null && Math.abs(p.channelShiftIntensity) <= 10);
    assert.ok(p.brightness !== null && p.brightness >= 0.5 && p.brightness <= 1.5);
    assert.equal(p.flipVertical, false);
    if (p.flipHorizontal) flips++;
  }
  // Binomial(2000, 0.5): 5 standard deviations is +-112.
  assert.ok(Math.abs(flips - n / 2) < 112, `flips ${flips}`);
  // Unused options stay neutral, as Keras's dict.
  assert.deepEqual(new ImageDataGenerator().getRandomTransform([8, 8, 3], 1), {
    theta: 0,
    tx: 0,
    ty: 0,
    shear: 0,
    zx: 1,
    zy: 1,
    flipHorizontal: false,
    flipVertical: false,
    channelShiftIntensity: null,
    brightness: null,
  });
});

test('integer and list shift ranges draw whole pixels, as np.random.choice', () => {
  const ints = new Set<number>();
  const picks = new Set<number>();
  const intGen = new ImageDataGenerator({ widthShiftRange: 3 });
  const listGen = new ImageDataGenerator({ heightShiftRange: [5, 10] });
  for (let seed = 0; seed < 300; seed++) {
    ints.add(intGen.getRandomTransform([50, 50, 3], seed).ty);
    picks.add(listGen.getRandomTransform([50, 50, 3], seed).tx);
  }
  assert.deepEqual(
    [...ints].sort((a, b) => a - b),
    [-2, -1, 0, 1, 2],
  );
  assert.deepEqual(
    [...picks].sort((a, b) => a - b),
    [-10, -5, 5, 10],
  );
});

test('randomTransform is applyTransform of the seeded draw', () => {
  const gen = new ImageDataGenerator({ rotationRange: 30, horizontalFlip: true });
  const x = tf.tensor3d(grid, [5, 5, 1]);
  const a = gen.randomTransform(x, 11);
  const b = gen.applyTransform(x, gen.getRandomTransform([5, 5, 1], 11));
  assert.deepEqual([...a.dataSync()], [...b.dataSync()]);
  tf.dispose([x, a, b]);
});

test("standardize runs preprocessingFunction, then rescale (Keras's order)", () => {
  const gen = new ImageDataGenerator({
    preprocessingFunction: (t) => tf.sub(t, 100),
    rescale: 0.5,
  });
  const x = tf.tensor3d([100, 120, 200], [1, 3, 1]);
  const y = gen.standardize(x);
  // (v - 100) * 0.5, not v * 0.5 - 100.
  assert.deepEqual([...y.dataSync()], [0, 10, 50]);
  const bad = new ImageDataGenerator({
    preprocessingFunction: (t) => tf.reshape(t, [3, 1, 1]) as tf.Tensor3D,
  });
  assert.throws(
    () => bad.standardize(x),
    (e: unknown) => e instanceof XferError && e.code === 'SHAPE_MISMATCH',
  );
  tf.dispose([x, y]);
});

test('options are checked: unknown names suggest the camelCase one, unsupported Keras options say so', () => {
  assert.throws(
    () => new ImageDataGenerator({ rotation_range: 40 } as never),
    /unknown ImageDataGenerator option 'rotation_range'; did you mean 'rotationRange'\?/,
  );
  assert.throws(
    () => new ImageDataGenerator({ dataFormat: 'channels_first' } as never),
    (e: unknown) => e instanceof XferError && e.code === 'UNSUPPORTED',
  );
  assert.throws(
    () => new ImageDataGenerator({ fillMode: 'mirror' as never }),
    /Expected one of 'constant', 'nearest', 'reflect', 'wrap' for fillMode but received 'mirror'/,
  );
  assert.throws(() => new ImageDataGenerator({ zoomRange: [1.2, 0.8] }), /zoomRange/);
  assert.throws(() => new ImageDataGenerator({ rotationRange: -1 }), /rotationRange/);
  assert.deepEqual(new ImageDataGenerator({ zoomRange: 0.2 }).zoomRange, [0.8, 1.2]);
});

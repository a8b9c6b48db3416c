/**
 * TensorFlow's `ImageProjectiveTransformV3` (what Keras 3's random geometric layers run through
 * `ops.image.affine_transform`) on float32 HWC pixels in JS: output pixel (x, y) reads input
 * ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k) with k = c0 x + c1 y + 1; coordinates outside
 * the image are mapped by the fill mode (TF's `MapCoordinate`), then sampled bilinearly or by
 * nearest, neighbours outside the image reading `fillValue`.
 */

export const TF_FILL_MODES = ['reflect', 'wrap', 'constant', 'nearest'] as const;
export type TfFillMode = (typeof TF_FILL_MODES)[number];
export const TF_TRANSFORM_INTERPOLATIONS = ['bilinear', 'nearest'] as const;
export type TfTransformInterpolation = (typeof TF_TRANSFORM_INTERPOLATIONS)[number];

/** [a0, a1, a2, b0, b1, b2, c0, c1], TF's transform layout. */
export type ProjectiveMatrix = readonly [
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
];

const f = Math.fround;
const clamp = (v: number, len: number) => Math.min(Math.max(v, 0), len - 1);

/** TF's MapCoordinate for one axis, including its quirks (reflect about -0.5; wrap by len). */
function mapCoordinate(coord: number, len: number, mode: TfFillMode): number {
  let c = coord;
  switch (mode) {
    case 'constant':
      return c;
    case 'nearest':
      return clamp(c, len);
    case 'reflect':
      if (c < 0) {
        if (len <= 1) c = 0;
        else {
          const sz2 = 2 * len;
          // TF tests `c < sz2`, always true here, so the fold always runs.
          c = f(sz2 * Math.trunc(-c / sz2) + c);
          c = c < -len ? c + sz2 : -c - 1;
        }
      } else if (c > len - 1) {
        if (len <= 1) c = 0;
        else {
          const sz2 = 2 * len;
          c = f(c - sz2 * Math.trunc(c / sz2));
          if (c >= len) c = sz2 - c - 1;
        }
      }
      return clamp(f(c), len);
    default:
      if (c < 0) {
        c = len <= 1 ? 0 : f(c + len * (Math.trunc(-c / (len - 1)) + 1));
      } else if (c > len - 1) {
        c = len <= 1 ? 0 : f(c - len * Math.trunc(c / (len - 1)));
      }
      return clamp(c, len);
  }
}

/** std::round: halves away from zero. */
const roundHalfAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v));

export function projectiveTransform(
  src: Float32Array,
  height: number,
  width: number,
  channels: number,
  m: ProjectiveMatrix,
  interpolation: TfTransformInterpolation,
  fillMode: TfFillMode,
  fillValue: number,
): Float32Array {
  const out = new Float32Array(src.length);
  const fill = f(fillValue);
  const read = (y: number, x: number, k: number) =>
    y >= 0 && y < height && x >= 0 && x < width ? src[(y * width + x) * channels + k]! : fill;
  let o = 0;
  for (let oy = 0; oy < height; oy++) {
    for (let ox = 0; ox < width; ox++, o += channels) {
      const projection = f(f(f(m[6] * ox) + f(m[7] * oy)) + 1);
      if (projection === 0) {
        out.fill(fill, o, o + channels);
        continue;
      }
      const inX = f(f(f(f(m[0] * ox) + f(m[1] * oy)) + m[2]) / projection);
      const inY = f(f(f(f(m[3] * ox) + f(m[4] * oy)) + m[5]) / projection);
      const x = mapCoordinate(inX, width, fillMode);
      const y = mapCoordinate(inY, height, fillMode);
      if (interpolation === 'nearest') {
        const ry = roundHalfAway(y);
        const rx = roundHalfAway(x);
        for (let k = 0; k < channels; k++) out[o + k] = read(ry, rx, k);
        continue;
      }
      const y0 = Math.floor(y);
      const x0 = Math.floor(x);
      const y1 = y0 + 1;
      const x1 = x0 + 1;
      const wx1 = f(x - x0);
      const wx0 = f(x1 - x);
      const wy1 = f(y - y0);
      const wy0 = f(y1 - y);
      for (let k = 0; k < channels; k++) {
        const top = f(f(wx0 * read(y0, x0, k)) + f(wx1 * read(y0, x1, k)));
        const bottom = f(f(wx0 * read(y1, x0, k)) + f(wx1 * read(y1, x1, k)));
        out[o + k] = f(f(wy0 * top) + f(wy1 * bottom));
      }
    }
  }
  return out;
}

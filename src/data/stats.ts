/**
 * The statistics of Keras's `ImageDataGenerator.fit` and the normalization of `standardize`, on
 * float32 NHWC arrays. Sums run in double precision and results are stored as float32, where numpy
 * sums float32 pairwise in float32: values agree to float32 rounding, not always to the last bit.
 */

/** Per-channel mean of [n, h, w, c] pixels (numpy's `mean(axis=(0, 1, 2))`). */
export function channelMean(x: Float32Array, channels: number): Float32Array {
  const sums = new Float64Array(channels);
  for (let i = 0; i < x.length; i++) sums[i % channels]! += x[i]!;
  const count = x.length / channels;
  return Float32Array.from(sums, (s) => s / count);
}

/** Per-channel population standard deviation (numpy's `std(axis=(0, 1, 2))`, ddof 0). */
export function channelStd(x: Float32Array, channels: number): Float32Array {
  const mean = new Float64Array(channels);
  for (let i = 0; i < x.length; i++) mean[i % channels]! += x[i]!;
  const count = x.length / channels;
  for (let k = 0; k < channels; k++) mean[k]! /= count;
  const squares = new Float64Array(channels);
  for (let i = 0; i < x.length; i++) {
    const d = x[i]! - mean[i % channels]!;
    squares[i % channels]! += d * d;
  }
  return Float32Array.from(squares, (s) => Math.sqrt(s / count));
}

/**
 * Eigen-decomposition of a symmetric n x n matrix (row-major, overwritten with the eigenvectors
 * as columns); returns the eigenvalues. Householder reduction to tridiagonal form, then the
 * implicit QL method (the EISPACK tred2/tql2 pair), O(n^3).
 */
export function symmetricEigen(v: Float64Array, n: number): Float64Array {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  for (let j = 0; j < n; j++) d[j] = v[(n - 1) * n + j]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = v[(i - 1) * n + j]!;
        v[i * n + j] = 0;
        v[j * n + i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        v[j * n + i] = f;
        g = e[j]! + v[j * n + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += v[k * n + j]! * d[k]!;
          e[k]! += v[k * n + j]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) v[k * n + j]! -= f * e[k]! + g * d[k]!;
        d[j] = v[(i - 1) * n + j]!;
        v[i * n + j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    v[(n - 1) * n + i] = v[i * n + i]!;
    v[i * n + i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = v[k * n + i + 1]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += v[k * n + i + 1]! * v[k * n + j]!;
        for (let k = 0; k <= i; k++) v[k * n + j]! -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) v[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = v[(n - 1) * n + j]!;
    v[(n - 1) * n + j] = 0;
  }
  v[(n - 1) * n + n - 1] = 1;
  e[0] = 0;

  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n && Math.abs(e[m]!) > eps * tst1) m++;
    if (m === n) m = n - 1;
    if (m > l) {
      do {
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          for (let k = 0; k < n; k++) {
            const row = k * n;
            h = v[row + i + 1]!;
            v[row + i + 1] = s * v[row + i]! + c * h;
            v[row + i] = c * v[row + i]! - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  return d;
}

/**
 * Keras's ZCA matrix for centred [n, features] data: sigma = XᵀX / n, (u, s) = svd(sigma),
 * U·diag(1/sqrt(s + epsilon))·Uᵀ. sigma is symmetric positive semi-definite, so its SVD is its
 * eigen-decomposition and the product does not depend on the order or signs of the vectors. When
 * n < features the n x n Gram matrix XXᵀ/n is decomposed instead (same non-zero eigenvalues;
 * U_r = XᵀV / sqrt(n·s)) and the null space, where s = 0, gets 1/sqrt(epsilon): O(n²·features)
 * instead of O(features³).
 */
export function zcaMatrix(
  x: Float32Array,
  n: number,
  features: number,
  epsilon: number,
): Float32Array {
  const out = new Float32Array(features * features);
  if (n >= features) {
    const sigma = new Float64Array(features * features);
    for (let s = 0; s < n; s++) {
      const row = s * features;
      for (let i = 0; i < features; i++) {
        const xi = x[row + i]!;
        if (xi === 0) continue;
        const base = i * features;
        for (let j = i; j < features; j++) sigma[base + j]! += xi * x[row + j]!;
      }
    }
    for (let i = 0; i < features; i++) {
      for (let j = i; j < features; j++) {
        const value = sigma[i * features + j]! / n;
        sigma[i * features + j] = value;
        sigma[j * features + i] = value;
      }
    }
    const values = symmetricEigen(sigma, features);
    const scaled = Float64Array.from(values, (s) => 1 / Math.sqrt(Math.max(s, 0) + epsilon));
    for (let i = 0; i < features; i++) {
      for (let j = i; j < features; j++) {
        let sum = 0;
        for (let k = 0; k < features; k++) {
          sum += sigma[i * features + k]! * scaled[k]! * sigma[j * features + k]!;
        }
        out[i * features + j] = sum;
        out[j * features + i] = sum;
      }
    }
    return out;
  }
  const gram = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = a; b < n; b++) {
      let sum = 0;
      for (let k = 0; k < features; k++) sum += x[a * features + k]! * x[b * features + k]!;
      gram[a * n + b] = sum / n;
      gram[b * n + a] = sum / n;
    }
  }
  const values = symmetricEigen(gram, n);
  const base = 1 / Math.sqrt(epsilon);
  // Columns u_r = Xᵀ v_r / sqrt(n s_r) for the non-null eigenvalues.
  const tolerance = Math.max(...values.map(Math.abs)) * features * 2 ** -52;
  const vectors: Float64Array[] = [];
  const weights: number[] = [];
  for (let r = 0; r < n; r++) {
    const s = values[r]!;
    if (!(s > tolerance)) continue;
    const u = new Float64Array(features);
    for (let a = 0; a < n; a++) {
      const va = gram[a * n + r]!;
      if (va === 0) continue;
      for (let k = 0; k < features; k++) u[k]! += x[a * features + k]! * va;
    }
    const norm = 1 / Math.sqrt(n * s);
    for (let k = 0; k < features; k++) u[k]! *= norm;
    vectors.push(u);
    weights.push(1 / Math.sqrt(s + epsilon) - base);
  }
  for (let i = 0; i < features; i++) {
    for (let j = i; j < features; j++) {
      let sum = i === j ? base : 0;
      for (let r = 0; r < vectors.length; r++)
        sum += vectors[r]![i]! * weights[r]! * vectors[r]![j]!;
      out[i * features + j] = sum;
      out[j * features + i] = sum;
    }
  }
  return out;
}

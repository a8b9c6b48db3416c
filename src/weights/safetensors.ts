/**
 * The `.safetensors` format (Hugging Face), parsed here rather than through a library: an 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}}`
 * (plus an optional `__metadata__` of strings), then the raw little-endian tensor bytes. It holds
 * no code, which is why it is the one PyTorch format xfer reads. Everything the header claims is
 * checked against the file before a value is read: header size, offsets in range, tensors not
 * overlapping, byte counts equal to shape times dtype size.
 */
import { constants } from 'node:buffer';
import { promises as fsp } from 'node:fs';
import { initBackend } from '../engine/backend.js';
import { invalidParameterError, XferError } from '../errors.js';
import { pathExists } from '../util/fs.js';
import { formatShape, type WeightValues } from './stored.js';

/** Headers above this are refused before they are read, as the reference implementation does. */
export const MAX_HEADER_BYTES = 100 * 1000 * 1000;

const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** The dtypes read as weights (floats, to float32); others are listed but refused on read. */
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Byte range inside the data section (after the header). */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsFile {
  readonly file: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** In header order. */
  readonly tensors: readonly SafetensorsEntry[];
  /** Reads one tensor as float32 (F32, F16 and BF16). */
  read(entry: SafetensorsEntry): WeightValues;
}

function corrupt(file: string, what: string, details: Record<string, unknown> = {}): XferError {
  return new XferError('CORRUPT_FILE', `${file} is not a readable .safetensors file: ${what}`, {
    file,
    ...details,
  });
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseEntry(file: string, name: string, raw: unknown, dataBytes: number): SafetensorsEntry {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw corrupt(file, `the header entry for '${name}' is not an object.`, { tensor: name });
  }
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined) {
    throw corrupt(
      file,
      `tensor '${name}' has dtype ${JSON.stringify(dtype)}; known: ${Object.keys(DTYPE_BYTES).join(', ')}.`,
      { tensor: name },
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw corrupt(
      file,
      `tensor '${name}' has shape ${JSON.stringify(shape)}, not a list of sizes.`,
      {
        tensor: name,
      },
    );
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every(isNonNegativeInteger) ||
    offsets[0] > offsets[1]
  ) {
    throw corrupt(file, `tensor '${name}' has data_offsets ${JSON.stringify(offsets)}.`, {
      tensor: name,
    });
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataBytes) {
    throw corrupt(
      file,
      `tensor '${name}' ends at byte ${end} of the data, but the file holds ${dataBytes} bytes of data (truncated?).`,
      { tensor: name, end, dataBytes },
    );
  }
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = count * DTYPE_BYTES[dtype]!;
  if (!Number.isSafeInteger(expected) || expected !== end - begin) {
    throw corrupt(
      file,
      `tensor '${name}' (${dtype} ${formatShape(shape as number[])}) needs ${expected} bytes but its offsets span ${end - begin}.`,
      { tensor: name, expected, received: end - begin },
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Half-precision bits to a float. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : Number.NaN;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function decode(bytes: Uint8Array, dtype: string): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = DTYPE_BYTES[dtype]!;
  const out = new Float32Array(bytes.byteLength / size);
  if (dtype === 'F32') {
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (dtype === 'F16') {
    for (let i = 0; i < out.length; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  } else {
    // bfloat16 is the top half of a float32.
    const word = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < out.length; i++) {
      word.setUint32(0, view.getUint16(i * 2, true) << 16);
      out[i] = word.getFloat32(0);
    }
  }
  return out;
}

/**
 * Parses a `.safetensors` file's header and checks it against the file; values are read on demand.
 * @example
 * const st = await readSafetensors('model.safetensors');
 * const kernel = st.read(st.tensors.find((t) => t.name === 'fc.weight')!);
 */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  if (typeof file !== 'string' || file === '') {
    throw invalidParameterError('file', 'the path of a .safetensors file', file);
  }
  await initBackend();
  if (!(await pathExists(file))) {
    throw new XferError('NOT_FOUND', `${file} does not exist.`, { path: file });
  }
  const handle = await fsp.open(file, 'r');
  let bytes: Buffer;
  let headerBytes: number;
  try {
    const { size } = await handle.stat();
    if (size < 8)
      throw corrupt(file, `it is ${size} bytes long, shorter than the 8-byte header length.`);
    const prefix = Buffer.alloc(8);
    await handle.read(prefix, 0, 8, 0);
    const declared = prefix.readBigUInt64LE(0);
    if (declared > BigInt(MAX_HEADER_BYTES)) {
      throw corrupt(
        file,
        `its header claims ${declared} bytes, over the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or damaged).`,
      );
    }
    headerBytes = Number(declared);
    if (8 + headerBytes > size) {
      throw corrupt(
        file,
        `its header claims ${headerBytes} bytes but the file has only ${size - 8} after the length (truncated?).`,
      );
    }
    if (size > constants.MAX_LENGTH) {
      throw new XferError(
        'UNSUPPORTED',
        `${file} is ${size} bytes; xfer reads .safetensors files up to ${constants.MAX_LENGTH} bytes.`,
        { file, size },
      );
    }
    bytes = Buffer.alloc(size);
    const { bytesRead } = await handle.read(bytes, 0, size, 0);
    if (bytesRead !== size) throw corrupt(file, 'it changed size while being read.');
  } finally {
    await handle.close();
  }
  let header: unknown;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerBytes).toString('utf8'));
  } catch (error) {
    throw corrupt(file, `its header is not valid JSON (${(error as Error).message}).`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw corrupt(file, 'its header is not a JSON object.');
  }
  const dataStart = 8 + headerBytes;
  const dataBytes = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw corrupt(file, "its '__metadata__' is not an object.");
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v === 'string') metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseEntry(file, name, raw, dataBytes));
  }
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1]!;
    const current = sorted[i]!;
    if (current.begin < previous.end) {
      throw corrupt(
        file,
        `tensors '${previous.name}' and '${current.name}' overlap (bytes ${current.begin}..${previous.end}).`,
        { tensors: [previous.name, current.name] },
      );
    }
  }
  return {
    file,
    metadata,
    tensors,
    read(entry) {
      if (!FLOAT_DTYPES.has(entry.dtype)) {
        throw new XferError(
          'UNSUPPORTED',
          `${file}: tensor '${entry.name}' is ${entry.dtype}; xfer loads F32, F16 and BF16 weights.`,
          { file, tensor: entry.name, dtype: entry.dtype },
        );
      }
      return decode(bytes.subarray(dataStart + entry.begin, dataStart + entry.end), entry.dtype);
    },
  };
}

/** True when the first bytes look like a safetensors header: a sane length, then `{`. */
export function looksLikeSafetensors(head: Buffer, size: number): boolean {
  if (head.byteLength < 9) return false;
  const length = head.readBigUInt64LE(0);
  return length > 1n && length <= BigInt(Math.min(MAX_HEADER_BYTES, size - 8)) && head[8] === 0x7b;
}

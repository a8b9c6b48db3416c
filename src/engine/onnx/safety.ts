/**
 * ONNX models are loaded from bytes only, and only when they are self-contained: an initializer (or
 * any tensor in an attribute, a subgraph or a function) stored as `external_data` makes onnxruntime
 * open a path the file chooses, which is how `../../etc/passwd` becomes "weights" (CVE-2022-25882,
 * CVE-2024-27318). xfer writes every ONNX file itself with the weights inline, so any external
 * reference means the file is not one of ours and is refused.
 *
 * The check walks protobuf's wire format directly instead of decoding with onnx-proto: it visits
 * field headers only and skips every payload by its length, so a 500 MB VGG16 costs a few thousand
 * varint reads and no copies.
 */
import { XferError } from '../../errors.js';

/** Nesting deeper than this (graphs inside attributes inside graphs...) is refused. */
export const MAX_ONNX_NESTING = 64;

// The message types that can hold a TensorProto, and the fields that lead to one (onnx.proto3).
type Kind = 'model' | 'graph' | 'node' | 'attribute' | 'tensor' | 'sparse' | 'function' | 'entry';

const CHILDREN: Record<Kind, Partial<Record<number, Kind>>> = {
  // ModelProto: graph = 7, functions = 25.
  model: { 7: 'graph', 25: 'function' },
  // GraphProto: node = 1, initializer = 5, sparse_initializer = 15.
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse' },
  // NodeProto: attribute = 5.
  node: { 5: 'attribute' },
  // AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11, sparse_tensor = 22, sparse_tensors = 23.
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse' },
  // TensorProto: external_data = 13 (StringStringEntryProto).
  tensor: { 13: 'entry' },
  // SparseTensorProto: values = 1, indices = 2.
  sparse: { 1: 'tensor', 2: 'tensor' },
  // FunctionProto: node = 7.
  function: { 7: 'node' },
  entry: {},
};
const TENSOR_NAME = 8;
const TENSOR_DATA_LOCATION = 14;
const DATA_LOCATION_EXTERNAL = 1;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

class Walker {
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly source: string,
  ) {}

  corrupt(what: string): XferError {
    return new XferError(
      'CORRUPT_FILE',
      `${this.source} is not a readable ONNX model: ${what}. Export it again (xfer export).`,
      { file: this.source },
    );
  }

  varint(pos: { at: number }, end: number): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos.at >= end) throw this.corrupt('a field is cut off');
      const byte = this.bytes[pos.at++]!;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw this.corrupt('a varint is longer than 10 bytes');
  }

  /** Walks one message of `kind` in [start, end), adding each tensor stored outside it to `refs`. */
  walk(kind: Kind, start: number, end: number, depth: number, refs: ExternalReference[]): void {
    if (depth > MAX_ONNX_NESTING) throw this.corrupt(`it nests deeper than ${MAX_ONNX_NESTING}`);
    const pos = { at: start };
    let name: string | undefined;
    let external = false;
    const locations: string[] = [];
    while (pos.at < end) {
      const key = this.varint(pos, end);
      const field = Math.floor(key / 8);
      const wire = key % 8;
      if (field === 0) throw this.corrupt('a field number is 0');
      if (wire === 0) {
        const value = this.varint(pos, end);
        if (kind === 'tensor' && field === TENSOR_DATA_LOCATION) {
          external ||= value === DATA_LOCATION_EXTERNAL;
        }
      } else if (wire === 1 || wire === 5) {
        pos.at += wire === 1 ? 8 : 4;
      } else if (wire === 2) {
        const length = this.varint(pos, end);
        const bodyStart = pos.at;
        const bodyEnd = bodyStart + length;
        if (bodyEnd > end) throw this.corrupt('a field runs past the end of its message');
        const child = CHILDREN[kind][field];
        if (child === 'entry') {
          external = true;
          const location = this.location(bodyStart, bodyEnd);
          if (location !== undefined) locations.push(location);
        } else if (child !== undefined) {
          this.walk(child, bodyStart, bodyEnd, depth + 1, refs);
        } else if (kind === 'tensor' && field === TENSOR_NAME) {
          name = this.decoder.decode(this.bytes.subarray(bodyStart, bodyEnd));
        }
        pos.at = bodyEnd;
      } else {
        throw this.corrupt(`wire type ${wire} (groups or garbage) where ONNX has none`);
      }
      if (pos.at > end) throw this.corrupt('a field runs past the end of its message');
    }
    if (external) refs.push({ tensor: name ?? '(unnamed)', location: locations.join(', ') });
  }

  /** A StringStringEntryProto: its value when its key is 'location' (offset, length... are not). */
  private location(start: number, end: number): string | undefined {
    const pos = { at: start };
    let key = '';
    let value = '';
    while (pos.at < end) {
      const tag = this.varint(pos, end);
      if (tag % 8 !== 2) throw this.corrupt('an external_data entry is malformed');
      const length = this.varint(pos, end);
      if (pos.at + length > end) throw this.corrupt('an external_data entry is cut off');
      const text = this.decoder.decode(this.bytes.subarray(pos.at, pos.at + length));
      if (Math.floor(tag / 8) === ENTRY_KEY) key = text;
      else if (Math.floor(tag / 8) === ENTRY_VALUE) value = text;
      pos.at += length;
    }
    return key === 'location' ? value : undefined;
  }
}

/** A tensor whose values the model says live outside it. */
export interface ExternalReference {
  tensor: string;
  /** The `location` it names (e.g. '../../etc/passwd'), or '' when none is given. */
  location: string;
}

/** Every tensor of an ONNX model stored outside it; throws CORRUPT_FILE for malformed bytes. */
export function findExternalData(
  bytes: Uint8Array,
  source = 'the ONNX model',
): ExternalReference[] {
  const walker = new Walker(bytes, source);
  if (bytes.length === 0) throw walker.corrupt('it is empty (0 bytes)');
  const refs: ExternalReference[] = [];
  walker.walk('model', 0, bytes.length, 0, refs);
  return refs;
}

/**
 * Refuses an ONNX model that is malformed at the wire level or stores any tensor as external data;
 * call it on the bytes before handing them to onnxruntime.
 * @example
 * const bytes = await fs.readFile('model.onnx');
 * assertSelfContainedOnnx(bytes, 'model.onnx');
 * const session = await ort.InferenceSession.create(bytes);
 */
export function assertSelfContainedOnnx(bytes: Uint8Array, source = 'the ONNX model'): void {
  const refs = findExternalData(bytes, source);
  if (refs.length === 0) return;
  const listed = refs
    .slice(0, 3)
    .map((r) => `'${r.tensor}' -> '${r.location}'`)
    .join(', ');
  throw new XferError(
    'UNSUPPORTED',
    `${source} keeps ${refs.length} tensor(s) in external files (${listed}${refs.length > 3 ? ', ...' : ''}); xfer loads only self-contained ONNX models, since external data lets a file make onnxruntime read any path. Export the model again with its weights inside (xfer export, or onnx.save_model(..., save_as_external_data=False)).`,
    { file: source, external: refs },
  );
}

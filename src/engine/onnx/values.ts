/**
 * Values flowing through the export, and the one layout decision: 4-D tensors live as NCHW inside
 * the ONNX graph (what ONNX's Conv and pooling ops take), everything else as tfjs has it. A value
 * remembers its layout and Keras (channels-last) shape; converters ask for the layout they need
 * and a Transpose is emitted once per value and layout, only where one is needed (e.g. before a
 * Flatten, whose element order must be tfjs's h, w, c).
 */
import type { OnnxGraph } from './graph.js';

/** A Keras shape: batch first, channels last, `null` for unknown dimensions. */
export type Shape = (number | null)[];

export interface Value {
  name: string;
  /** The tfjs (channels-last) shape, whatever the layout inside the graph. */
  shape: Shape;
  /** `nchw`: a 4-D value stored channels-first. `native`: stored exactly as tfjs has it. */
  layout: 'nchw' | 'native';
}

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

export class ExportContext {
  private readonly transposed = new Map<string, string>();

  constructor(readonly graph: OnnxGraph) {}

  /** The value's name in NCHW layout (4-D values) or as is (other ranks). */
  nchw(value: Value): string {
    if (value.shape.length !== 4 || value.layout === 'nchw') return value.name;
    return this.transpose(value.name, TO_NCHW);
  }

  /** The value's name in tfjs's own layout. */
  native(value: Value): string {
    if (value.shape.length !== 4 || value.layout === 'native') return value.name;
    return this.transpose(value.name, TO_NHWC);
  }

  private transpose(name: string, perm: number[]): string {
    const key = `${name}:${perm.join('')}`;
    let out = this.transposed.get(key);
    if (out === undefined) {
      out = this.graph.add('Transpose', `${name}_${perm === TO_NCHW ? 'nchw' : 'nhwc'}`, [name], {
        perm: { ints: perm },
      });
      this.transposed.set(key, out);
    }
    return out;
  }
}

/** A 4-D value stays NCHW, anything else native: the layout an op keeps its input's shape in. */
export function layoutFor(shape: Shape): Value['layout'] {
  return shape.length === 4 ? 'nchw' : 'native';
}

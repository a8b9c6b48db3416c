/**
 * A small in-memory ONNX graph: nodes, float32/int64 initializers, one input and one output, and
 * its serialization to an ONNX `ModelProto` with onnx-proto (protobufjs). Kept separate from the
 * layer converters so that passes (BatchNormalization folding, dead-node pruning) work on plain
 * arrays before anything is encoded.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** The opset the exporter writes; onnxruntime-node 1.30 runs opsets 7 to 23. */
export const ONNX_OPSET = 13;
/** IR version 8 (ONNX 1.10), the newest onnx-proto 8.0.1 knows. */
export const ONNX_IR_VERSION = 8;

export type AttributeValue =
  | { int: number }
  | { ints: number[] }
  | { float: number }
  | { floats: number[] }
  | { string: string };

export interface GraphNode {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttributeValue>;
}

export interface Initializer {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array;
}

/** `null` dims are dynamic (the batch). */
export interface GraphIo {
  name: string;
  dims: (number | null)[];
}

export class OnnxGraph {
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  private readonly used = new Set<string>();
  input: GraphIo | undefined;
  output: GraphIo | undefined;

  /** A value or node name not used yet, from a readable stem (a Keras layer name). */
  unique(stem: string): string {
    let name = stem;
    for (let i = 1; this.used.has(name); i++) name = `${stem}_${i}`;
    this.used.add(name);
    return name;
  }

  addInitializer(stem: string, dims: number[], data: Float32Array | BigInt64Array): string {
    const name = this.unique(stem);
    this.initializers.set(name, { name, dims, data });
    return name;
  }

  int64(stem: string, values: number[]): string {
    return this.addInitializer(stem, [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  scalar(stem: string, value: number): string {
    return this.addInitializer(stem, [], Float32Array.of(value));
  }

  /** Adds a node with one output; returns the output's name. */
  add(
    op: string,
    stem: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
  ): string {
    const output = this.unique(stem);
    this.nodes.push({ op, name: output, inputs, outputs: [output], attributes });
    return output;
  }

  /** Nodes whose outputs the graph output does not depend on, and unused initializers, removed. */
  prune(): void {
    if (!this.output) return;
    const needed = new Set([this.output.name]);
    const kept: GraphNode[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i]!;
      if (node.outputs.some((o) => needed.has(o))) {
        kept.push(node);
        for (const input of node.inputs) needed.add(input);
      }
    }
    this.nodes.splice(0, this.nodes.length, ...kept.reverse());
    for (const name of [...this.initializers.keys()]) {
      if (!needed.has(name)) this.initializers.delete(name);
    }
  }

  /** How many nodes read each value (the graph output counts as a reader). */
  consumers(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const node of this.nodes) {
      for (const input of node.inputs) counts.set(input, (counts.get(input) ?? 0) + 1);
    }
    if (this.output) counts.set(this.output.name, (counts.get(this.output.name) ?? 0) + 1);
    return counts;
  }

  /** The ONNX protobuf bytes of the graph as a model. */
  encode(graphName: string): Uint8Array {
    if (!this.input || !this.output) throw new Error('the ONNX graph has no input or output');
    const valueInfo = (io: GraphIo) => ({
      name: io.name,
      type: {
        tensorType: {
          elemType: onnx.TensorProto.DataType.FLOAT,
          shape: {
            dim: io.dims.map((d, i) =>
              d === null ? { dimParam: i === 0 ? 'N' : `d${i}` } : { dimValue: d },
            ),
          },
        },
      },
    });
    const model = {
      irVersion: ONNX_IR_VERSION,
      producerName: 'xfer',
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      graph: {
        name: graphName,
        node: this.nodes.map((n) => ({
          opType: n.op,
          name: n.name,
          input: n.inputs,
          output: n.outputs,
          attribute: Object.entries(n.attributes).map(([name, value]) =>
            encodeAttribute(name, value),
          ),
        })),
        initializer: [...this.initializers.values()].map((init) => ({
          name: init.name,
          dims: init.dims,
          dataType:
            init.data instanceof Float32Array
              ? onnx.TensorProto.DataType.FLOAT
              : onnx.TensorProto.DataType.INT64,
          // Raw little-endian bytes: protobufjs writes repeated floats one by one, ~100x slower.
          rawData: new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength),
        })),
        input: [valueInfo(this.input)],
        output: [valueInfo(this.output)],
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }
}

function encodeAttribute(name: string, value: AttributeValue) {
  const T = onnx.AttributeProto.AttributeType;
  if ('int' in value) return { name, type: T.INT, i: value.int };
  if ('ints' in value) return { name, type: T.INTS, ints: value.ints };
  if ('float' in value) return { name, type: T.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: T.FLOATS, floats: value.floats };
  return { name, type: T.STRING, s: new TextEncoder().encode(value.string) };
}

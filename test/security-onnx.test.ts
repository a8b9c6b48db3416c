/**
 * ONNX models are loaded self-contained only: a crafted model whose initializer points at
 * '../../etc/passwd' through external_data is refused before onnxruntime sees it, wherever the
 * tensor hides (an initializer, a node attribute, a subgraph); malformed bytes are CORRUPT_FILE.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { initBackend } from '../src/engine/backend.js';
import { exportOnnx } from '../src/engine/onnx/export.js';
import { assertSelfContainedOnnx, findExternalData } from '../src/engine/onnx/safety.js';
import { OrtModel } from '../src/engine/ort.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

const { onnx } = onnxProto;
const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;

let exported: ReturnType<typeof exportOnnx>;
before(async () => {
  await initBackend();
  const input = tf.input({ shape: [3] });
  const output = tf.layers.dense({ units: 2, name: 'dense' }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  exported = exportOnnx(model);
  model.dispose();
});

function externalTensor(name: string): onnxProto.onnx.ITensorProto {
  return {
    name,
    dims: [3, 2],
    dataType: onnx.TensorProto.DataType.FLOAT,
    dataLocation: EXTERNAL,
    externalData: [
      { key: 'location', value: '../../etc/passwd' },
      { key: 'offset', value: '0' },
      { key: 'length', value: '24' },
    ],
  };
}

/** The exported model with its first initializer moved "outside", as a hostile file would. */
function hostileInitializer(): Uint8Array {
  const model = onnx.ModelProto.decode(exported.bytes);
  const first = model.graph!.initializer![0]!;
  model.graph!.initializer![0] = onnx.TensorProto.create(externalTensor(first.name!));
  return onnx.ModelProto.encode(model).finish();
}

test('a model xfer exported is self-contained and loads', async () => {
  assert.deepEqual(findExternalData(exported.bytes), []);
  const runner = await OrtModel.fromBytes(exported.bytes, exported);
  await runner.release();
});

test("an initializer pointing at '../../etc/passwd' is refused before onnxruntime opens it", async () => {
  const bytes = hostileInitializer();
  const refs = findExternalData(bytes);
  assert.equal(refs.length, 1);
  assert.equal(refs[0]!.location, '../../etc/passwd');
  await assert.rejects(OrtModel.fromBytes(bytes, exported), (error: unknown) => {
    assert.ok(error instanceof XferError);
    assert.equal(error.code, 'UNSUPPORTED');
    assert.match(error.message, /external files .*'\.\.\/\.\.\/etc\/passwd'/);
    return true;
  });
});

test('data_location EXTERNAL alone, or external_data alone, is enough to refuse', () => {
  const model = onnx.ModelProto.decode(exported.bytes);
  const first = model.graph!.initializer![0]!;
  model.graph!.initializer![0] = onnx.TensorProto.create({ ...first, dataLocation: EXTERNAL });
  assert.equal(findExternalData(onnx.ModelProto.encode(model).finish()).length, 1);
  const { dataLocation: _drop, ...rest } = externalTensor(first.name!);
  model.graph!.initializer![0] = onnx.TensorProto.create(rest);
  assert.equal(findExternalData(onnx.ModelProto.encode(model).finish()).length, 1);
});

test('external tensors inside node attributes and subgraphs are found too', () => {
  const model = onnx.ModelProto.decode(exported.bytes);
  const inner = onnx.GraphProto.create({
    name: 'body',
    initializer: [externalTensor('deep')],
  });
  model.graph!.node!.push(
    onnx.NodeProto.create({
      opType: 'If',
      name: 'hidden',
      attribute: [
        { name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: externalTensor('t') },
        { name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: inner },
      ],
    }),
  );
  const refs = findExternalData(onnx.ModelProto.encode(model).finish());
  assert.deepEqual(refs.map((r) => r.tensor).sort(), ['deep', 't']);
});

test('malformed bytes are CORRUPT_FILE, never a raw error', () => {
  const cases: Uint8Array[] = [
    new Uint8Array(0),
    exported.bytes.subarray(0, Math.floor(exported.bytes.length / 2)),
    Uint8Array.of(0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f), // graph field longer than the file
    Uint8Array.of(0x0b), // wire type 3 (a group)
  ];
  for (const bytes of cases) {
    assert.throws(
      () => assertSelfContainedOnnx(bytes, 'x.onnx'),
      (error: unknown) => error instanceof XferError && error.code === 'CORRUPT_FILE',
    );
  }
});

import * as ort from 'onnxruntime-node';
import { initBackend } from './src/engine/backend.js';
import { getApplication } from './src/applications/index.js';
import { exportOnnx } from './src/engine/onnx/export.js';
await initBackend();
const m = await getApplication('mobilenet_v2').build({ includeTop: false, weights: null, inputShape: [224, 224, 3] });
const ex = exportOnnx(m);
const base = { intraOpNumThreads: 2 };
const configs: Record<string, any> = {
  raw: base,
  mine: { ...base, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', executionProviders: ['cpu'], logSeverityLevel: 3, extra: { optimization: { disable_specified_optimizers: 'Pad_Fusion' } } },
  minePadOn: { ...base, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', executionProviders: ['cpu'], logSeverityLevel: 3 },
};
const sessions: Record<string, ort.InferenceSession> = {};
for (const [k, c] of Object.entries(configs)) sessions[k] = await ort.InferenceSession.create(ex.bytes, c);
const data = new Float32Array(16 * 224 * 224 * 3).fill(0.5);
const feed = { [ex.input.name]: new ort.Tensor('float32', data, [16, 224, 224, 3]) };
for (const s of Object.values(sessions)) await s.run(feed);
for (let round = 0; round < 3; round++) {
  for (const [k, s] of Object.entries(sessions)) {
    const t = performance.now(); await s.run(feed); console.log(round, k, ((performance.now() - t) / 16).toFixed(1), 'ms/img');
  }
}

/**
 * tfjs-backend-wasm's multi-threaded build in Node.
 *
 * The package ships `tfjs-backend-wasm-threaded-simd.wasm` (XNNPACK on a pthreadpool) but never
 * picks it in Node: its `WASM_HAS_MULTITHREAD_SUPPORT` flag answers `false` whenever `IS_NODE`
 * (tensorflow/tfjs#3830), and its loader hands Emscripten a `blob:` URL for the pthread worker
 * script and a `Blob` for the main script, which browsers accept and Node's `worker_threads`
 * cannot load. Emscripten's own output is Node-aware otherwise (it uses `worker_threads` and reads
 * scripts with `fs`), so this module instantiates the threaded build itself with real file paths
 * and registers the result as the `wasm` backend: every wasm kernel, xfer's gradient kernels
 * included, then runs on N threads.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { BackendWasm, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { XferError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';

/** The environment variable that sets the wasm backend's thread count. */
export const WASM_THREADS_ENV = 'XFER_WASM_THREADS';

const require = createRequire(import.meta.url);
const WASM_OUT = path.dirname(
  require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js'),
);
const FACTORY_FILE = path.join(WASM_OUT, 'tfjs-backend-wasm-threaded-simd.js');
const WASM_FILE = path.join(WASM_OUT, 'tfjs-backend-wasm-threaded-simd.wasm');
const WORKER_NAME = 'tfjs-backend-wasm-threaded-simd.worker.js';

/** The parts of the WebAssembly JS API used here (the project compiles without the DOM lib). */
interface WasmApi {
  instantiate(binary: Uint8Array, imports: object): Promise<{ instance: object; module: object }>;
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => object;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The emscripten module as tfjs-backend-wasm's `BackendWasm` expects it. */
type EmscriptenModule = any;

/**
 * The pthread worker script as a file: the package ships it only as a string inside a CommonJS
 * module (for a browser `Blob`). Written once per content under the temp dir, as `.cjs` so that
 * Node runs it as CommonJS (it uses `require` and `__filename`) whatever package.json is nearby.
 */
async function workerScriptPath(): Promise<string> {
  const { wasmWorkerContents } = require(path.join(WASM_OUT, WORKER_NAME)) as {
    wasmWorkerContents: string;
  };
  const hash = createHash('sha256').update(wasmWorkerContents).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'xfer-wasm-threads');
  const file = path.join(dir, `threaded-simd-${hash}.worker.cjs`);
  if (!existsSync(file)) {
    await mkdir(dir, { recursive: true });
    // The template literal it comes from turned the `\\n` escapes of the script's strings into
    // newlines; put them back (tfjs-backend-wasm does the same before making its Blob).
    await writeFileAtomic(file, wasmWorkerContents.replace(/\n/g, '\\n'));
  }
  return file;
}

/**
 * Instantiates the threaded build and wraps it the way tfjs-backend-wasm's `init` does.
 *
 * tfjs sizes XNNPACK's pool as `min(requested, logical cores / 2, 8)` (it assumes two hardware
 * threads per core), so on a 2-core machine it would never use a second thread. The wasm import
 * that reports the logical core count is answered with `2 * threads` to make `threads` the cap.
 */
async function instantiateThreaded(threads: number): Promise<EmscriptenModule> {
  const factory = require(FACTORY_FILE) as (config: object) => Promise<EmscriptenModule>;
  const workerFile = await workerScriptPath();
  const binary = await readFile(WASM_FILE);
  let failed: ((reason: unknown) => void) | undefined;
  const failure = new Promise<never>((_, reject) => {
    failed = reject;
  });
  const module = factory({
    locateFile: (file: string, prefix: string) => {
      if (file.endsWith('.worker.js')) return workerFile;
      if (file.endsWith('.wasm')) return WASM_FILE;
      return prefix + file;
    },
    // Each pthread worker evaluates this file to get the module factory (`importScripts` with fs).
    mainScriptUrlOrBlob: FACTORY_FILE,
    instantiateWasm: (
      imports: { env: Record<string, unknown> },
      receive: (instance: object, module: object) => void,
    ) => {
      imports.env.emscripten_num_logical_cores = () => 2 * threads;
      wasmApi.instantiate(binary, imports).then(
        (result) => receive(result.instance, result.module),
        (error) => failed?.(error),
      );
      return {};
    },
    onAbort: (reason: unknown) => failed?.(new Error(`tfjs-backend-wasm aborted: ${reason}`)),
  });
  const ready: EmscriptenModule = await Promise.race([module, failure]);
  ready.tfjs = {
    init: ready.cwrap('init', null, []),
    initWithThreadsCount: ready.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: ready.cwrap('get_threads_count', 'number', []),
    registerTensor: ready.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: ready.cwrap('dispose_data', null, ['number']),
    dispose: ready.cwrap('dispose', null, []),
  };
  return ready;
}

/** Whether this Node can run wasm threads (shared memory and worker_threads). */
export function wasmThreadsSupported(): boolean {
  try {
    new wasmApi.Memory({ initial: 1, maximum: 1, shared: true });
    require('node:worker_threads');
    return true;
  } catch {
    return false;
  }
}

/**
 * The wasm thread count asked for: `XFER_WASM_THREADS` when set (1 keeps the single-threaded
 * build), otherwise `fallback`.
 */
export function requestedWasmThreads(fallback: number): number {
  const raw = process.env[WASM_THREADS_ENV];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `${WASM_THREADS_ENV} must be a whole number of threads, 1 or more; received '${raw}'. Unset it to use the default, or set it to 1 for the single-threaded wasm build.`,
      { name: WASM_THREADS_ENV, received: raw },
    );
  }
  return n;
}

type BackendFactory = () => tf.KernelBackend | Promise<tf.KernelBackend>;

/** tfjs-backend-wasm's own (single-threaded) registration, kept to switch back to it. */
let singleThreaded: { factory: BackendFactory; priority: number } | undefined;
/** Threads of the registered `wasm` factory (1: tfjs-backend-wasm's own). */
let registeredThreads = 1;

/**
 * Registers the `wasm` backend with `threads` threads: tfjs-backend-wasm's threaded SIMD build for
 * 2 or more (XNNPACK's pool, capped at 8 by the build; the calling thread is one of them), its
 * own single-threaded build for 1. When `wasm` is the active backend it is re-created and
 * re-activated (tensors that lived on the old instance are gone; call this before building
 * models). Returns the thread count now in effect: 1 when this Node lacks wasm threads.
 *
 * Costs: the build starts a pool of 8 Node workers (Emscripten's PTHREAD_POOL_SIZE; 4–13 s
 * measured on the loaded 2-core machine), and those workers inherit the process's Node flags, so a
 * script run as `node --input-type=module -e ...` cannot use it (Node refuses `--input-type` in a
 * worker).
 * @example
 * await setWasmThreads(2);
 * await tf.setBackend('wasm');
 */
export async function setWasmThreads(threads: number): Promise<number> {
  const wanted = threads > 1 && wasmThreadsSupported() ? Math.min(threads, 8) : 1;
  const engine = tf.engine();
  if (wanted === registeredThreads && engine.registryFactory.wasm) return wanted;
  const wasActive = tf.getBackend() === 'wasm';
  const current = engine.registryFactory.wasm;
  if (registeredThreads === 1 && current) singleThreaded ??= { ...current };
  if (current) tf.removeBackend('wasm');
  setThreadsCount(wanted);
  if (wanted === 1) {
    if (!singleThreaded) throw new Error('tfjs-backend-wasm is not registered');
    tf.registerBackend('wasm', singleThreaded.factory, singleThreaded.priority);
  } else {
    tf.registerBackend(
      'wasm',
      async () => {
        const module = await instantiateThreaded(wanted);
        // Creating the backend starts XNNPACK's pool; its threads live as long as the backend.
        const backend = new BackendWasm(module);
        // Emscripten refs a Node worker while its pthread runs, and the pool's threads never
        // end: without this a script would not exit when its work is done.
        for (const worker of module.PThread.runningWorkers) worker.unref();
        return backend as unknown as tf.KernelBackend;
      },
      // tfjs-backend-wasm registers with priority 2; keep whatever it used.
      singleThreaded?.priority ?? 2,
    );
  }
  registeredThreads = wanted;
  if (wasActive) {
    await tf.setBackend('wasm');
    await tf.ready();
  }
  return wanted;
}

/** The thread count the active wasm backend runs with (1 for the single-threaded build). */
export function wasmThreadCount(): number {
  if (tf.getBackend() !== 'wasm') return 1;
  const backend = tf.backend() as unknown as { wasm: EmscriptenModule };
  return backend.wasm.tfjs.getThreadsCount() as number;
}

/**
 * Backend choice. Default order: `tensorflow` (@tensorflow/tfjs-node, only when the user has
 * installed it: it cannot be a dependency, its install downloads libtensorflow), then `wasm`, then
 * `cpu`. `XFER_BACKEND=wasm|cpu|tensorflow` overrides. `XFER_WASM_THREADS=N` runs the wasm backend
 * on tfjs-backend-wasm's threaded build with N threads (threads.ts).
 */
import { createRequire } from 'node:module';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import './wasm-gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { XferError } from '../errors.js';
import { warn } from '../util/log.js';
import { checkOneOf } from '../util/validate.js';
import { requestedWasmThreads, setWasmThreads } from './threads.js';

export const BACKEND_NAMES = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

let initialized: Promise<BackendName> | undefined;

function tfjsNodeInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}

async function loadTensorflowBackend(): Promise<void> {
  if (tf.findBackend('tensorflow')) return;
  try {
    const specifier = '@tensorflow/tfjs-node';
    await import(specifier);
  } catch (error) {
    throw new XferError(
      'BACKEND_UNAVAILABLE',
      `XFER_BACKEND=tensorflow needs @tensorflow/tfjs-node, which could not be loaded (${(error as Error).message}). Install it with \`npm install @tensorflow/tfjs-node\`, or use XFER_BACKEND=wasm.`,
      {},
      { cause: error },
    );
  }
}

/**
 * Threads of the wasm backend unless `XFER_WASM_THREADS` says otherwise. One: the threaded build
 * works in Node (see threads.ts) but was not measured faster on the project's loaded 2-core
 * machine, where a parallel kernel waits for its slowest, descheduled thread.
 */
const DEFAULT_WASM_THREADS = 1;

async function activate(name: BackendName, wasmThreads = 1): Promise<BackendName> {
  if (name === 'tensorflow') await loadTensorflowBackend();
  if (name === 'wasm' && (await setWasmThreads(wasmThreads)) > 1 && !(await tf.setBackend(name))) {
    warn(
      `the threaded wasm backend (XFER_WASM_THREADS=${wasmThreads}) failed to start; using the single-threaded one.`,
    );
    await setWasmThreads(1);
  }
  const ok = await tf.setBackend(name);
  if (!ok) {
    throw new XferError('BACKEND_UNAVAILABLE', `the tfjs backend '${name}' failed to initialize.`);
  }
  await tf.ready();
  return name;
}

async function chooseBackend(requested?: string): Promise<BackendName> {
  const wanted = requested ?? process.env.XFER_BACKEND;
  // Checked first: a bad value is the user's mistake, not a reason to fall back to cpu.
  const wasmThreads = requestedWasmThreads(DEFAULT_WASM_THREADS);
  if (wanted !== undefined && wanted !== '') {
    return activate(checkOneOf('XFER_BACKEND', wanted, BACKEND_NAMES), wasmThreads);
  }
  if (tfjsNodeInstalled()) {
    try {
      return await activate('tensorflow');
    } catch {
      // An installed but broken tfjs-node (wrong libtensorflow) falls through to wasm.
    }
  }
  try {
    return await activate('wasm', wasmThreads);
  } catch {
    return activate('cpu');
  }
}

/**
 * Initializes the tfjs backend once (idempotent) and returns its name. Every async entry point of
 * xfer awaits this, so users never have to call `tf.ready()` themselves.
 * @example
 * const backend = await initBackend(); // 'wasm'
 */
export function initBackend(requested?: BackendName): Promise<BackendName> {
  if (requested !== undefined) {
    initialized = chooseBackend(requested);
    return initialized;
  }
  initialized ??= chooseBackend().catch((error) => {
    initialized = undefined;
    throw error;
  });
  return initialized;
}

/** The backend in use, after `initBackend`. */
export function backendName(): string {
  return tf.getBackend();
}

/**
 * Backend choice. Default order: `tensorflow` (@tensorflow/tfjs-node, only when the user has
 * installed it: it cannot be a dependency, its install downloads libtensorflow), then `wasm`, then
 * `cpu`. `XFER_BACKEND=wasm|cpu|tensorflow` overrides.
 */
import { createRequire } from 'node:module';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import './wasm-gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import { XferError } from '../errors.js';
import { checkOneOf } from '../util/validate.js';

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

async function activate(name: BackendName): Promise<BackendName> {
  if (name === 'tensorflow') await loadTensorflowBackend();
  const ok = await tf.setBackend(name);
  if (!ok) {
    throw new XferError('BACKEND_UNAVAILABLE', `the tfjs backend '${name}' failed to initialize.`);
  }
  await tf.ready();
  return name;
}

async function chooseBackend(requested?: string): Promise<BackendName> {
  const wanted = requested ?? process.env.XFER_BACKEND;
  if (wanted !== undefined && wanted !== '') {
    return activate(checkOneOf('XFER_BACKEND', wanted, BACKEND_NAMES));
  }
  if (tfjsNodeInstalled()) {
    try {
      return await activate('tensorflow');
    } catch {
      // An installed but broken tfjs-node (wrong libtensorflow) falls through to wasm.
    }
  }
  try {
    return await activate('wasm');
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

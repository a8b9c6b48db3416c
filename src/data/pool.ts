/**
 * A small pool of worker threads that load images for batches: read, decode (plain JPEGs with
 * libjpeg-turbo in WebAssembly, `jpeg-wasm.ts`; everything else with sharp), resize (PIL-exact)
 * and augment (Keras's apply_transform) one file per task, writing the float pixels
 * straight into the image's place in the batch (shared memory, `batch-buffers.ts`). The main
 * thread still draws every random parameter, in the same order as without workers, so the
 * batches are identical either way; only the pixel work moves. A worker holds at most
 * `IN_FLIGHT` tasks, the rest wait here and go to whichever worker frees up first: a bounded
 * number of images half-done in memory, and no worker idles while the other has a queue.
 *
 * Workers never keep the process alive: a worker is ref'd only while it has tasks in flight, and
 * a pool with nothing to do for `IDLE_MS` terminates its workers (they are started again on
 * demand). If workers cannot run (a worker file missing, a worker crashing), the images are
 * loaded on the main thread instead, with one warning: the same pixels, more slowly.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { invalidParameterError, XferError, type XferErrorCode } from '../errors.js';
import { warnOnce } from '../util/log.js';
import type { PixelTransform, TransformSettings } from './affine.js';
import type { DatasetLoadSettings } from './dataset-image.js';
import type { ResolvedLoadOptions } from './decode.js';
import { type ImageTask, runImageTask } from './image-task.js';
import type { PixelPreprocess } from './pixel-preprocess.js';

/** An `ImageTask` with the id its reply carries. */
export type PoolTask = ImageTask & { id: number };

export type PoolReply =
  | { id: number; ok: true }
  | {
      id: number;
      ok: false;
      code: XferErrorCode | null;
      message: string;
      details: Record<string, unknown>;
    };

/** The generator's settings the transforms read, as a plain object a worker can receive. */
export function transformSettings(generator: TransformSettings): TransformSettings {
  return {
    fillMode: generator.fillMode,
    cval: generator.cval,
    interpolationOrder: generator.interpolationOrder,
  };
}

/** How long a pool waits with no task before it terminates its workers. */
const IDLE_MS = 5000;

/**
 * Tasks a worker holds at once: several decoding on libuv's threads while one is warped. On 2
 * cores 8 ran about 10% faster than 2 (fewer thread wake-ups per image); more gained nothing.
 */
const IN_FLIGHT = 8;

/** The default number of workers: one per core the process may use. */
export function defaultWorkers(): number {
  return typeof os.availableParallelism === 'function'
    ? os.availableParallelism()
    : os.cpus().length;
}

/** Checks a `workers` option: a non-negative integer; undefined gives `defaultWorkers()`. */
export function checkWorkers(value: unknown): number {
  if (value === undefined) return defaultWorkers();
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 256) {
    throw invalidParameterError(
      'workers',
      'an integer from 0 (load on the main thread) to 256',
      value,
    );
  }
  return value;
}

/** The worker's file beside this one: .ts under tsx (tests), .js once compiled to dist/. */
function workerFile(): string {
  const here = import.meta.url;
  const [first, second] = here.endsWith('.ts') ? ['.ts', '.js'] : ['.js', '.ts'];
  for (const ext of [first, second]) {
    const file = fileURLToPath(new URL(`./pool-worker${ext}`, here));
    if (existsSync(file)) return file;
  }
  throw new XferError(
    'NOT_FOUND',
    `the image worker file pool-worker${first} is missing beside ${fileURLToPath(here)}; reinstall xfer, or pass workers: 0 to load images on the main thread.`,
    { worker: true },
  );
}

/**
 * A worker on `file`. Under tsx (the source tree, in tests) a worker thread does not inherit the
 * TypeScript loader, so a one-line bootstrap registers tsx's ESM hooks there first.
 */
function startWorker(file: string): Worker {
  if (!file.endsWith('.ts')) return new Worker(file);
  const tsx = import.meta.resolve('tsx/esm/api');
  const url = pathToFileURL(file).href;
  return new Worker(
    `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(url)}); });`,
    { eval: true },
  );
}

interface Slot {
  worker: Worker;
  inFlight: number;
  /** Set when the pool terminates it on purpose. */
  closing: boolean;
}

interface Job {
  task: PoolTask;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Pending extends Job {
  slot: Slot;
}

export class ImagePool {
  private slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Tasks waiting for a worker with room. */
  private queue: Job[] = [];
  private nextId = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(readonly size: number) {}

  /** Workers currently running (0 before the first task and after an idle period). */
  get running(): number {
    return this.slots.length;
  }

  /**
   * Runs one task in a worker (its pixels land in `task.dest`); rejects with the worker's error
   * (an XferError when it was one).
   */
  run(task: ImageTask): Promise<void> {
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    while (this.slots.length < this.size) this.slots.push(this.spawn());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { ...task, id } as PoolTask, resolve, reject });
      this.dispatch();
    });
  }

  /** Hands queued tasks to the least busy workers while they have room. */
  private dispatch(): void {
    while (this.queue.length > 0 && this.slots.length > 0) {
      let slot = this.slots[0]!;
      for (const s of this.slots) if (s.inFlight < slot.inFlight) slot = s;
      if (slot.inFlight >= IN_FLIGHT) return;
      const job = this.queue.shift()!;
      this.pending.set(job.task.id, { ...job, slot });
      if (slot.inFlight++ === 0) slot.worker.ref();
      // An array task's pixels are a copy made for it: move them instead of copying again.
      const task = job.task;
      slot.worker.postMessage(
        task,
        task.kind === 'array' ? [task.pixels.buffer as ArrayBuffer] : [],
      );
    }
  }

  /** Terminates the workers now; tasks in flight fail. A later `run` starts new ones. */
  async close(): Promise<void> {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const slots = this.slots;
    this.slots = [];
    this.failQueued(
      new XferError('UNSUPPORTED', 'the image-loading workers were closed.', {
        worker: true,
        closed: true,
      }),
    );
    await Promise.all(
      slots.map((s) => {
        s.closing = true;
        return s.worker.terminate();
      }),
    );
  }

  private spawn(): Slot {
    const worker = startWorker(workerFile());
    const slot: Slot = { worker, inFlight: 0, closing: false };
    worker.unref();
    worker.on('message', (reply: PoolReply) => this.settle(slot, reply));
    const fail = (error: Error) => {
      this.slots = this.slots.filter((s) => s !== slot);
      for (const [id, p] of this.pending) {
        if (p.slot !== slot) continue;
        this.pending.delete(id);
        p.reject(error);
      }
      slot.inFlight = 0;
      this.failQueued(error);
    };
    worker.on('error', (error) => {
      fail(
        new XferError(
          'UNSUPPORTED',
          `an image-loading worker thread failed: ${error.message}. Pass workers: 0 to load images on the main thread.`,
          { worker: true },
          { cause: error },
        ),
      );
      void worker.terminate();
    });
    worker.on('exit', (code) => {
      if (slot.inFlight > 0) {
        fail(
          new XferError(
            'UNSUPPORTED',
            `an image-loading worker thread exited (code ${code}) with images in flight. Pass workers: 0 to load images on the main thread.`,
            { worker: true, closed: slot.closing },
          ),
        );
      } else {
        this.slots = this.slots.filter((s) => s !== slot);
      }
    });
    return slot;
  }

  /** Rejects the tasks still waiting: the pool failed or closed (their callers load them here). */
  private failQueued(error: Error): void {
    const queued = this.queue;
    this.queue = [];
    for (const job of queued) job.reject(error);
  }

  private settle(slot: Slot, reply: PoolReply): void {
    const p = this.pending.get(reply.id);
    if (p === undefined) return;
    this.pending.delete(reply.id);
    if (--slot.inFlight === 0) slot.worker.unref();
    this.dispatch();
    if (reply.ok) {
      p.resolve();
    } else {
      p.reject(
        reply.code === null
          ? new Error(reply.message)
          : new XferError(reply.code, reply.message, reply.details),
      );
    }
    if (this.pending.size === 0 && this.queue.length === 0) {
      this.idleTimer = setTimeout(() => void this.close(), IDLE_MS);
      this.idleTimer.unref();
    }
  }
}

const pools = new Map<number, ImagePool>();
/** Set when workers cannot run in this process: later loads go straight to the main thread. */
let workersBroken = false;

/** The process-wide pool with `size` workers (iterators with the same count share it). */
export function sharedPool(size: number): ImagePool {
  let pool = pools.get(size);
  if (pool === undefined) {
    pool = new ImagePool(size);
    pools.set(size, pool);
  }
  return pool;
}

/**
 * Terminates the image-loading worker threads now (they restart on demand). Never required: idle
 * workers do not keep a process alive and end by themselves after a few seconds.
 * @example
 * await closeImagePools();
 */
export async function closeImagePools(): Promise<void> {
  await Promise.all([...pools.values()].map((p) => p.close()));
}

/** A failure of the pool itself (not of an image): the task is then done on the main thread. */
function workerFailure(error: unknown): boolean {
  return error instanceof XferError && error.details.worker === true;
}

/**
 * After a pool failure: unless the pool was merely closed with tasks in flight, workers cannot
 * run in this process (e.g. a bundler dropped pool-worker.js), so later loads skip them.
 */
function noteWorkerFailure(error: XferError): void {
  if (error.details.closed === true) return;
  workersBroken = true;
  warnOnce('image-workers-failed', `${error.message} Loading on the main thread instead.`);
}

/**
 * Runs `task` (its pixels land in `task.dest`) in the shared pool when `workers` > 0 and `dest`
 * is shared memory a worker can write (`BatchBuffers`), else here. A failure of the pool itself
 * sends the task, and all later ones, to the main thread.
 */
async function runTask(
  task: ImageTask,
  workers: number,
  forWorker: () => ImageTask = () => task,
): Promise<void> {
  if (workers > 0 && !workersBroken && task.dest.buffer instanceof SharedArrayBuffer) {
    try {
      await sharedPool(workers).run(forWorker());
      return;
    } catch (error) {
      if (!workerFailure(error)) throw error;
      noteWorkerFailure(error as XferError);
    }
  }
  await runImageTask(task);
}

/**
 * Keras's `apply_transform` of one image of `flow`'s in-memory array (`source`, left as it is)
 * into `dest`, in the shared pool when `workers` > 0.
 */
export function transformInPool(
  source: Float32Array,
  shape: readonly [number, number, number],
  transform: { params: PixelTransform; settings: TransformSettings },
  preprocess: PixelPreprocess | null,
  dest: Float32Array,
  workers: number,
): Promise<void> {
  const task: ImageTask = { kind: 'array', pixels: source, shape, transform, preprocess, dest };
  // A worker gets its own copy of the pixels (moved to it, not copied again); here they are read.
  return runTask(task, workers, () => ({ ...task, pixels: source.slice() }));
}

/** One `imageDatasetFromDirectory` image (float32, resized) into `dest`, in the pool when `workers` > 0. */
export function loadDatasetPixels(
  file: string,
  settings: DatasetLoadSettings,
  dest: Float32Array,
  workers: number,
): Promise<void> {
  return runTask({ kind: 'dataset', file, settings, dest }, workers);
}

/**
 * One image of a flowFromDirectory batch into `dest`: `load_img`'s pixels, transformed when
 * `transform` is not null, then preprocessed when `preprocess` is. With `workers` > 0 the work
 * runs in the shared pool; with 0, here.
 */
export function loadBatchImage(
  file: string,
  options: ResolvedLoadOptions,
  transform: { params: PixelTransform; settings: TransformSettings } | null,
  preprocess: PixelPreprocess | null,
  dest: Float32Array,
  workers: number,
): Promise<void> {
  return runTask({ kind: 'keras', file, options, transform, preprocess, dest }, workers);
}

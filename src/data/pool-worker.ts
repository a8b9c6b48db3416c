/**
 * The worker-thread side of the image pool (`pool.ts`): reads, decodes, resizes and augments one
 * image per message and transfers its pixels back. It imports only tfjs-free modules, so a worker
 * starts in a few tens of milliseconds, and it computes with the same functions as the main
 * thread, so a batch is identical with or without workers.
 */
import { parentPort } from 'node:worker_threads';
import { XferError } from '../errors.js';
import { transformPixels } from './affine.js';
import { loadDatasetImage } from './dataset-image.js';
import { loadImageFile } from './decode.js';
import type { PoolReply, PoolTask } from './pool.js';

async function run(task: PoolTask): Promise<Uint8Array | Float32Array> {
  if (task.kind === 'dataset') return loadDatasetImage(task.file, task.settings);
  if (task.kind === 'array') {
    const [height, width, channels] = task.shape;
    const { params, settings } = task.transform;
    return transformPixels(task.pixels, height, width, channels, params, settings);
  }
  const img = await loadImageFile(task.file, task.options);
  if (task.transform === null) return img.data;
  const pixels = new Float32Array(img.data.length);
  pixels.set(img.data);
  return transformPixels(
    pixels,
    img.height,
    img.width,
    img.channels,
    task.transform.params,
    task.transform.settings,
  );
}

const port = parentPort;
if (port === null) throw new Error('pool-worker.ts runs only as a worker thread (see pool.ts).');

port.on('message', async (task: PoolTask) => {
  let reply: PoolReply;
  try {
    const data = await run(task);
    reply = { id: task.id, ok: true, data };
  } catch (error) {
    const e = error as Error;
    reply = {
      id: task.id,
      ok: false,
      code: error instanceof XferError ? error.code : null,
      message: e?.message ?? String(error),
      details: error instanceof XferError ? error.details : {},
    };
  }
  if (reply.ok) {
    const { buffer, byteOffset, byteLength } = reply.data;
    // Transfer when the pixels own their whole buffer (always, for resized images); else copy.
    const own = byteOffset === 0 && byteLength === buffer.byteLength;
    try {
      port.postMessage(reply, own ? [buffer as ArrayBuffer] : []);
      return;
    } catch {
      // A buffer from native memory cannot always be detached: send a copy.
    }
  }
  port.postMessage(reply);
});

/**
 * The worker-thread side of the image pool (`pool.ts`): reads, decodes, resizes and augments one
 * image per message, writing its pixels into the batch's shared memory, and replies when done.
 * It imports only tfjs-free modules, so a worker starts in a few tens of milliseconds, and it
 * computes with the same function as the main thread, so a batch is identical with or without
 * workers.
 */
import { parentPort } from 'node:worker_threads';
import { XferError } from '../errors.js';
import { runImageTask } from './image-task.js';
import type { PoolReply, PoolTask } from './pool.js';

const port = parentPort;
if (port === null) throw new Error('pool-worker.ts runs only as a worker thread (see pool.ts).');

port.on('message', async (task: PoolTask) => {
  let reply: PoolReply;
  try {
    await runImageTask(task);
    reply = { id: task.id, ok: true };
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
  port.postMessage(reply);
});

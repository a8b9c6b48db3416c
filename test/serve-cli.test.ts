/**
 * `xfer serve` as a user runs it: the address on stdout, SIGTERM letting an in-flight request
 * finish before exiting 0, the token required off loopback (flag or XFER_SERVE_TOKEN).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { REPO_ROOT, runXfer } from './helpers/cli.js';
import { makeTempDir } from './helpers/image-folders.js';
import { buildRunFolder } from './helpers/serve-run.js';

let tmp: string;
let runDir: string;
let image: Buffer;

before(async () => {
  tmp = await makeTempDir('serve-cli');
  runDir = await buildRunFolder(path.join(tmp, 'run'), { classNames: ['cats', 'dogs'] });
  image = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#c08040' } })
    .png()
    .toBuffer();
});

after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

interface Served {
  child: ChildProcess;
  url: string;
  exit: Promise<{ code: number | null; signal: string | null; stderr: string }>;
}

/** Starts `xfer serve` and resolves with the URL it prints. */
function startServe(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'bin', 'xfer.js'), 'serve', runDir, '--port', '0', ...args],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exit = new Promise<{ code: number | null; signal: string | null; stderr: string }>(
    (resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      stdout += d;
      const url = /on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url) resolve({ child, url: url.replace('0.0.0.0', '127.0.0.1'), exit });
    });
    void exit.then(({ code }) =>
      reject(new Error(`xfer serve exited ${code} before listening: ${stderr}`)),
    );
  });
}

test('SIGTERM lets the in-flight request finish, refuses new connections, then exits 0', async () => {
  const served = await startServe([]);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(image.subarray(0, 16));
      await released;
      controller.enqueue(image.subarray(16));
      controller.close();
    },
  });
  const inFlight = fetch(`${served.url}/predict`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'image/png' },
    duplex: 'half',
  } as RequestInit);
  await new Promise((r) => setTimeout(r, 300)); // the request is being read
  served.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  await assert.rejects(fetch(`${served.url}/health`), 'no new connections while draining');
  release();
  const response = await inFlight;
  assert.equal(response.status, 200);
  const { classes } = (await response.json()) as { classes: { className: string }[] };
  assert.deepEqual(classes.map((c) => c.className).sort(), ['cats', 'dogs']);
  const { code, signal, stderr } = await served.exit;
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /SIGTERM: finishing in-flight requests/);
});

test('a non-loopback --host needs a token; XFER_SERVE_TOKEN provides it', async () => {
  const refused = await runXfer(['serve', runDir, '--host', '0.0.0.0', '--port', '0']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(
    refused.stderr,
    /^xfer: error: refusing to serve on 0\.0\.0\.0 without a token.*--token/m,
  );
  const served = await startServe(['--host', '0.0.0.0'], { XFER_SERVE_TOKEN: 'tok3n' });
  try {
    const post = (headers: Record<string, string>) =>
      fetch(`${served.url}/predict`, {
        method: 'POST',
        body: image,
        headers: { 'content-type': 'image/png', ...headers },
      });
    assert.equal((await post({})).status, 401);
    assert.equal((await post({ authorization: 'Bearer tok3n' })).status, 200);
  } finally {
    served.child.kill('SIGTERM');
    assert.equal((await served.exit).code, 0);
  }
});

/**
 * In Debian's headless Chromium (playwright-core): the `xfer serve` page classifies an uploaded
 * image and shows hostile class and file names as text; a tfjs export loads with tfjs's own
 * browser bundles and predicts what xfer predicts. Skips when /usr/bin/chromium is absent
 * (install it with `apt-get install -y chromium`).
 */
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import sharp from 'sharp';
import { imgToArray, loadImg } from '../src/data/index.js';
import * as tf from '../src/engine/tf.js';
import { type Classifier, loadClassifier } from '../src/recipes/classifier.js';
import { exportTfjs } from '../src/recipes/export.js';
import { preprocessingFunction } from '../src/recipes/preprocessing.js';
import { serve } from '../src/serve/index.js';
import { Random } from '../src/util/random.js';
import { REPO_ROOT } from './helpers/cli.js';
import { makeTempDir, patternImage } from './helpers/image-folders.js';
import { buildRunFolder } from './helpers/serve-run.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install -y chromium)`;
if (skip) console.log(`# skipping the browser tests: ${skip}`);

const XSS_CLASS = '<img src=x onerror=alert(1)>';
const XSS_FILE = '<img src=y onerror=alert(2)>.png';

let tmp: string;
let browser: Browser | undefined;

before(async () => {
  tmp = await makeTempDir('browser');
  if (skip) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function patternPng(classIndex: number, classes: number, size: number): Promise<Buffer> {
  const raw = await patternImage(classIndex, classes, size, new Random(11 + classIndex));
  return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

/** Where the screenshot goes: XFER_SCREENSHOT_DIR to keep it, else the test's temp folder. */
function screenshotPath(name: string): string {
  return path.join(process.env.XFER_SCREENSHOT_DIR ?? tmp, name);
}

test('the page classifies an uploaded image and shows hostile names as text', {
  skip,
}, async () => {
  const classNames = ['cats', XSS_CLASS, 'dogs & "birds"'];
  const runDir = await buildRunFolder(path.join(tmp, 'run3'), { classNames, imageSize: 32 });
  const server = await serve(runDir, { port: 0 });
  const page = await browser!.newPage();
  const alerts: string[] = [];
  const pageErrors: string[] = [];
  page.on('dialog', (dialog) => {
    alerts.push(dialog.message());
    void dialog.dismiss();
  });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  try {
    const image = await patternPng(1, 3, 96);
    const expected = (await (
      await fetch(`${server.url}/predict`, {
        method: 'POST',
        body: image,
        headers: { 'content-type': 'image/png' },
      })
    ).json()) as { classes: { className: string; probability: number }[] };

    await page.goto(server.url);
    await page.setInputFiles('#picker', { name: XSS_FILE, mimeType: 'image/png', buffer: image });
    await page.waitForSelector('body[data-state="done"]', { timeout: 20_000 });

    const shown = await page.$$eval('#classes .name', (els) => els.map((e) => e.textContent));
    assert.deepEqual(
      shown,
      expected.classes.map((c) => c.className),
      'the predicted classes, in order',
    );
    assert.ok(shown.includes(XSS_CLASS), 'the hostile class name is shown literally');
    const percents = await page.$$eval('#classes .label span:last-child', (els) =>
      els.map((e) => e.textContent),
    );
    assert.deepEqual(
      percents,
      expected.classes.map((c) => `${(100 * c.probability).toFixed(1)}%`),
    );
    assert.equal(await page.textContent('#file'), XSS_FILE);
    assert.equal(await page.$$eval('img', (els) => els.length), 1, 'only the preview image exists');
    const preview = await page.$eval(
      '#preview',
      (img) => (img as unknown as { naturalWidth: number }).naturalWidth,
    );
    assert.equal(preview, 96, 'the uploaded image is displayed');
    assert.deepEqual(alerts, []);
    assert.deepEqual(pageErrors, []);
    const shot = screenshotPath('serve-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok((await fsp.stat(shot)).size > 1000);
  } finally {
    await page.close();
    await server.close();
  }
});

/** A static server for the tfjs page: tfjs's browser bundles from node_modules and the export. */
async function staticServer(exportDir: string): Promise<{ server: Server; url: string }> {
  const files: Record<string, [string, string]> = {
    '/tf-core.js': [
      path.join(REPO_ROOT, 'node_modules/@tensorflow/tfjs-core/dist/tf-core.min.js'),
      'text/javascript',
    ],
    '/tf-backend-cpu.js': [
      path.join(REPO_ROOT, 'node_modules/@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js'),
      'text/javascript',
    ],
    '/tf-layers.js': [
      path.join(REPO_ROOT, 'node_modules/@tensorflow/tfjs-layers/dist/tf-layers.min.js'),
      'text/javascript',
    ],
    '/model/model.json': [path.join(exportDir, 'model.json'), 'application/json'],
    '/model/weights.bin': [path.join(exportDir, 'weights.bin'), 'application/octet-stream'],
    '/model/xfer.json': [path.join(exportDir, 'xfer.json'), 'application/json'],
  };
  const page = `<!doctype html><meta charset="utf-8"><title>tfjs export</title>
<script src="/tf-core.js"></script><script src="/tf-backend-cpu.js"></script><script src="/tf-layers.js"></script>`;
  const server = createServer(async (req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page);
      return;
    }
    const entry = files[req.url ?? ''];
    if (!entry) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': entry[1] }).end(await fsp.readFile(entry[0]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** xfer's own outputs for an image file: loadImg, the run's preprocessing, model.predict. */
async function xferOutputs(classifier: Classifier, file: string): Promise<number[]> {
  const { config, model } = classifier;
  const img = await loadImg(file, {
    targetSize: [config.imageSize, config.imageSize],
    colorMode: config.colorMode,
  });
  return tf.tidy(() => {
    const x = preprocessingFunction(config.preprocessing)(tf.expandDims(imgToArray(img), 0));
    return Array.from((model.predict(x) as tf.Tensor).dataSync());
  });
}

for (const kind of ['mobilenet_v2', 'conv'] as const) {
  test(`a tfjs export (${kind}) loads with tfjs in the browser and predicts what xfer predicts`, {
    skip,
  }, async () => {
    // MobileNetV2 checks that its layers load in tfjs (random MobileNetV2 features are ~0 at
    // 32x32, so its answer hardly depends on the image); the conv net, under caffe preprocessing
    // (a BGR flip), checks the pixels and the affine map, with answers that differ by image.
    const runDir = await buildRunFolder(path.join(tmp, `tfjs-${kind}`), {
      classNames: ['cats', 'dogs', 'birds'],
      imageSize: 32,
      ...(kind === 'mobilenet_v2'
        ? { backbone: 'mobilenet_v2' as const }
        : { preprocessing: { mode: 'caffe' as const } }),
    });
    const exportDir = path.join(tmp, `export-${kind}`);
    const metadata = await exportTfjs(runDir, exportDir);
    const classifier = await loadClassifier(runDir);
    const { server, url } = await staticServer(exportDir);
    const page = await browser!.newPage();
    const answers: number[][] = [];
    try {
      await page.goto(url);
      // Two colours apart in R and B: a translation-invariant net (conv + global pooling) tells
      // them apart, and a wrong channel order would show.
      for (const [n, colour] of ['#e0401a', '#2050d0'].entries()) {
        // Exactly the model's size, so the browser's decode gives the pixels xfer reads (no resize).
        const size = metadata.imageSize;
        const noise = await patternImage(n, 3, size, new Random(5 + n));
        const image = await sharp({
          create: { width: size, height: size, channels: 3, background: colour },
        })
          .composite([
            { input: noise, raw: { width: size, height: size, channels: 3 }, blend: 'overlay' },
          ])
          .png()
          .toBuffer();
        const file = path.join(tmp, `colour-${kind}-${n}.png`);
        await fsp.writeFile(file, image);
        const expected = await xferOutputs(classifier, file);
        const browserOut = await page.evaluate(
          BROWSER_PREDICT,
          `data:image/png;base64,${image.toString('base64')}`,
        );
        assert.deepEqual(browserOut.stored, ['cats', 'dogs', 'birds']);
        assert.equal(browserOut.values.length, 3);
        for (const [i, v] of browserOut.values.entries()) {
          assert.ok(
            Math.abs(v - expected[i]!) < 1e-4,
            `class ${i}: browser ${v} vs xfer ${expected[i]}`,
          );
        }
        answers.push(browserOut.values);
      }
      if (kind === 'conv') {
        const gap = Math.max(...answers[0]!.map((v, i) => Math.abs(v - answers[1]![i]!)));
        assert.ok(gap > 1e-3, `the two images get different answers (gap ${gap})`);
      }
    } finally {
      await page.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
}

/** Runs in the page: loads the export with tfjs, decodes the image, applies xfer.json's affine map, predicts. */
async function BROWSER_PREDICT(
  dataUrl: string,
): Promise<{ values: number[]; stored: string[] | undefined }> {
  // Browser globals, untyped here (the project compiles without the DOM lib).
  const w = globalThis as any;
  const tfjs = w.tf;
  await tfjs.setBackend('cpu');
  const meta: any = await (await fetch('/model/xfer.json')).json();
  const model = await tfjs.loadLayersModel('/model/model.json');
  const img = new w.Image();
  img.src = dataUrl;
  await img.decode();
  const canvas = w.document.createElement('canvas');
  canvas.width = meta.imageSize;
  canvas.height = meta.imageSize;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  const rgba: Uint8ClampedArray = ctx.getImageData(0, 0, meta.imageSize, meta.imageSize).data;
  const { weights, bias } = meta.affine;
  const x = new Float32Array(meta.imageSize * meta.imageSize * 3);
  for (let p = 0; p < meta.imageSize * meta.imageSize; p++) {
    for (let o = 0; o < 3; o++) {
      let v = bias[o];
      for (let i = 0; i < 3; i++) v += weights[o][i] * rgba[p * 4 + i]!;
      x[p * 3 + o] = v;
    }
  }
  const y = model.predict(tfjs.tensor4d(x, [1, meta.imageSize, meta.imageSize, 3]));
  return {
    values: Array.from(await y.data()) as number[],
    stored: model.getUserDefinedMetadata()?.xfer?.classNames as string[] | undefined,
  };
}

/**
 * The report people look at: `report.html` (self-contained: opens from disk with no network) and
 * a PNG of each plot in `plots/`, for a trained run (`trainClassifier`) or any evaluation
 * (`xfer evaluate`). It shows loss and accuracy per epoch, the confusion matrix, per-class
 * precision / recall / F1, the most confidently wrong images, parameter counts, image counts per
 * class and split, and time per epoch.
 */
import * as path from 'node:path';
import sharp from 'sharp';
import { countParams } from '../engine/index.js';
import type * as tf from '../engine/tf.js';
import { writeFileAtomic } from '../util/fs.js';
import {
  type Chart,
  confusionSpec,
  curveSpec,
  epochTimeSpec,
  perClassSpec,
  renderSvg,
  svgToPng,
} from './charts.js';
import { type ReportPage, renderReportHtml } from './html.js';
import {
  type ClassificationMetrics,
  classificationMetrics,
  type LabelledOutputs,
} from './metrics.js';

export { imagesPerClass, labelledOutputs } from './collect.js';
export {
  type ClassificationMetrics,
  type ClassScores,
  classificationMetrics,
  type LabelledOutputs,
  type Mistake,
} from './metrics.js';

export interface ReportOptions {
  /** Heading of the page. */
  title: string;
  /** One line under it (data folder, date...). Default ''. */
  subtitle?: string;
  /** The model evaluated: its parameter counts and input shape are shown. */
  model: tf.LayersModel;
  /** Backbone name, e.g. 'vgg16'. */
  backbone: string;
  /** Outputs on the evaluated set (see `labelledOutputs`). */
  outputs: LabelledOutputs;
  /** Name of the evaluated set, e.g. 'test'. */
  evaluatedSplit: string;
  /** Image counts per split, one per class in `outputs.classNames` order. */
  counts: { split: string; perClass: number[] }[];
  /** Per-epoch logs (`loss`, `val_loss`...) of training. Default: none (no curves). */
  history?: Record<string, number[]>;
  /** Seconds of each epoch, same length as the history. */
  epochSeconds?: number[];
  /** Settings to list, e.g. the run's config.json. */
  config?: Record<string, unknown>;
  /** Mistakes shown as thumbnails. Default 8. */
  topMistakes?: number;
}

export interface ReportResult {
  /** Path of report.html. */
  reportPath: string;
  /** Paths of the PNG plots. */
  plots: string[];
  metrics: ClassificationMetrics;
}

async function thumbnail(file: string): Promise<string | undefined> {
  try {
    const png = await sharp(file)
      .resize(150, 150, { fit: 'inside', kernel: 'nearest' })
      .png()
      .toBuffer();
    return `data:image/png;base64,${png.toString('base64')}`;
  } catch {
    return undefined;
  }
}

function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * Computes the metrics and writes `<dir>/report.html` and `<dir>/plots/*.png`, atomically.
 * @example
 * const outputs = await labelledOutputs(model, testIter, classNames);
 * await writeReport('xfer-run', { title: 'cats vs dogs', model, backbone: 'vgg16', outputs,
 *   evaluatedSplit: 'test', counts: [{ split: 'test', perClass: imagesPerClass(testIter, classNames) }] });
 */
export async function writeReport(dir: string, options: ReportOptions): Promise<ReportResult> {
  const metrics = classificationMetrics(options.outputs, options.topMistakes ?? 8);
  const classNames = options.outputs.classNames;
  const charts: Chart[] = [];
  const add = async (
    name: string,
    title: string,
    spec: Parameters<typeof renderSvg>[0] | undefined,
  ) => {
    if (spec) charts.push({ name, title, svg: await renderSvg(spec) });
  };
  const history = options.history ?? {};
  const epochCount = Math.max(0, ...Object.values(history).map((v) => v.length));
  const epochs = Array.from({ length: epochCount }, (_, i) => i + 1);
  if (epochCount > 0) {
    await add('loss', 'Loss', curveSpec(history, epochs, 'loss', 'Loss per epoch'));
    await add('accuracy', 'Accuracy', curveSpec(history, epochs, 'accuracy', 'Accuracy per epoch'));
    if (options.epochSeconds?.length) {
      await add('epoch-time', 'Time per epoch', epochTimeSpec(epochs, options.epochSeconds));
    }
  }
  await add('confusion-matrix', 'Confusion matrix', confusionSpec(classNames, metrics.confusion));
  await add('per-class', 'Per-class scores', perClassSpec(metrics));

  const plots: string[] = [];
  for (const chart of charts) {
    const file = path.join(dir, 'plots', `${chart.name}.png`);
    await writeFileAtomic(file, await svgToPng(chart.svg));
    plots.push(file);
  }
  const params = countParams(options.model);
  const inputShape = options.model.inputs[0]?.shape.slice(1).join(' x ') ?? '?';
  const page: ReportPage = {
    title: options.title,
    subtitle: options.subtitle ?? '',
    facts: [
      ['backbone', options.backbone],
      ['input', inputShape],
      ['classes', classNames.join(', ')],
      ['trainable parameters', formatCount(params.trainableParams)],
      ['non-trainable parameters', formatCount(params.nonTrainableParams)],
      ['total parameters', formatCount(params.totalParams)],
    ],
    classNames,
    counts: options.counts,
    evaluatedSplit: options.evaluatedSplit,
    metrics,
    charts,
    thumbnails: await Promise.all(metrics.mistakes.map((m) => thumbnail(m.file))),
    ...(epochCount > 0
      ? {
          epochs: epochs.map((epoch, i) => ({
            epoch,
            seconds: options.epochSeconds?.[i] ?? Number.NaN,
            logs: Object.fromEntries(
              Object.entries(history).map(([k, v]) => [k, v[i] ?? Number.NaN]),
            ),
          })),
        }
      : {}),
    ...(options.config ? { config: options.config } : {}),
  };
  const reportPath = path.join(dir, 'report.html');
  await writeFileAtomic(reportPath, renderReportHtml(page));
  return { reportPath, plots, metrics };
}

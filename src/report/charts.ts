/**
 * The report's plots as Vega-Lite specs, rendered to SVG in Node by Vega (no canvas, no browser)
 * and to PNG by sharp (librsvg inside its libvips).
 */
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { ClassificationMetrics } from './metrics.js';

/** A rendered plot: its file stem (plots/<name>.png), a title, and the SVG text. */
export interface Chart {
  name: string;
  title: string;
  svg: string;
}

const WIDTH = 360;
const HEIGHT = 240;
const CONFIG = { font: 'DejaVu Sans, Helvetica, Arial, sans-serif', background: 'white' } as const;

/** Renders a Vega-Lite spec to standalone SVG text. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG text to PNG bytes at 2x (144 dpi), for the plots folder. */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 144 }).png().toBuffer();
}

/** Train and validation curves of one metric per epoch (1-based epochs on the x axis). */
export function curveSpec(
  history: Record<string, number[]>,
  epochs: number[],
  metric: string,
  title: string,
): TopLevelSpec | undefined {
  const values: { epoch: number; split: string; value: number }[] = [];
  for (const [key, split] of [
    [metric, 'train'],
    [`val_${metric}`, 'validation'],
  ] as const) {
    history[key]?.forEach((value, i) => {
      if (Number.isFinite(value)) values.push({ epoch: epochs[i]!, split, value });
    });
  }
  if (values.length === 0) return undefined;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      // Whole epochs only: a fractional tick would print as a repeated number.
      x: {
        field: 'epoch',
        type: 'quantitative',
        axis: { values: epochs, format: 'd' },
        title: 'epoch',
      },
      y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: false } },
      color: {
        field: 'split',
        type: 'nominal',
        title: null,
        scale: { domain: ['train', 'validation'] },
      },
    },
  };
}

/** Counts of true class (rows) against predicted class (columns), with the count in each cell. */
export function confusionSpec(classNames: string[], confusion: number[][]): TopLevelSpec {
  const values = confusion.flatMap((row, t) =>
    row.map((count, p) => ({ true: classNames[t]!, predicted: classNames[p]!, count })),
  );
  const max = Math.max(1, ...values.map((v) => v.count));
  const side = Math.min(480, Math.max(160, 48 * classNames.length));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Confusion matrix',
    width: side,
    height: side,
    config: CONFIG,
    data: { values },
    encoding: {
      x: {
        field: 'predicted',
        type: 'nominal',
        sort: classNames,
        title: 'predicted class',
        axis: { labelAngle: 0 },
      },
      y: { field: 'true', type: 'nominal', sort: classNames, title: 'true class' },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: {
            field: 'count',
            type: 'quantitative',
            scale: { scheme: 'blues', domain: [0, max] },
            legend: null,
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 13 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: {
            condition: { test: `datum.count > ${max / 2}`, value: 'white' },
            value: 'black',
          },
        },
      },
    ],
  };
}

/** Precision, recall and F1 of each class, grouped by class. */
export function perClassSpec(metrics: ClassificationMetrics): TopLevelSpec {
  const values = metrics.perClass.flatMap((s) =>
    (['precision', 'recall', 'f1'] as const).map((metric) => ({
      class: s.className,
      metric,
      value: s[metric],
    })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Precision, recall and F1 per class',
    width: Math.min(720, Math.max(WIDTH, 60 * metrics.perClass.length)),
    height: HEIGHT,
    config: CONFIG,
    data: { values },
    mark: 'bar',
    encoding: {
      x: {
        field: 'class',
        type: 'nominal',
        title: null,
        sort: metrics.perClass.map((s) => s.className),
        axis: { labelAngle: 0 },
      },
      xOffset: { field: 'metric', type: 'nominal', sort: ['precision', 'recall', 'f1'] },
      y: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: null },
      color: { field: 'metric', type: 'nominal', sort: ['precision', 'recall', 'f1'], title: null },
    },
  };
}

/** Seconds per epoch. */
export function epochTimeSpec(epochs: number[], seconds: number[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Time per epoch',
    width: WIDTH,
    height: 160,
    config: CONFIG,
    data: { values: seconds.map((s, i) => ({ epoch: epochs[i]!, seconds: s })) },
    mark: 'bar',
    encoding: {
      x: { field: 'epoch', type: 'ordinal', title: 'epoch', axis: { labelAngle: 0 } },
      y: { field: 'seconds', type: 'quantitative', title: 'seconds' },
    },
  };
}

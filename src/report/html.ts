/** The report page: one self-contained HTML file (inline CSS, inline SVG, images as data URIs). */
import type { Chart } from './charts.js';
import type { ClassificationMetrics } from './metrics.js';

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Everything the page shows, already computed. */
export interface ReportPage {
  title: string;
  subtitle: string;
  /** Label/value rows: backbone, parameter counts, input size, ... */
  facts: [string, string][];
  classNames: string[];
  /** Image counts per split, one count per class. */
  counts: { split: string; perClass: number[] }[];
  /** Which split the metrics are on, e.g. 'test'. */
  evaluatedSplit: string;
  metrics: ClassificationMetrics;
  charts: Chart[];
  /** Thumbnails of `metrics.mistakes` (PNG data URIs, same order); undefined when unreadable. */
  thumbnails: (string | undefined)[];
  epochs?: { epoch: number; seconds: number; logs: Record<string, number> }[];
  config?: Record<string, unknown>;
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1d2330;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}
.sub{color:#5b6475;margin-top:0}.grid{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
table{border-collapse:collapse;font-size:.92rem}td,th{padding:.25rem .7rem;border-bottom:1px solid #eceff4;text-align:right}
th{background:#f5f7fa}td:first-child,th:first-child{text-align:left}.num{font-variant-numeric:tabular-nums}
.kpi{display:flex;gap:1rem;flex-wrap:wrap}.kpi div{background:#f5f7fa;border-radius:8px;padding:.6rem 1rem}
.kpi b{display:block;font-size:1.4rem}.mistakes{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;width:150px;font-size:.8rem}figure img{width:150px;height:150px;object-fit:contain;background:#f5f7fa;border-radius:6px;image-rendering:pixelated}
figcaption{word-break:break-all}.chart svg{max-width:100%;height:auto}
`;

function pct(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '—';
}

function fixed(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function table(head: string[], rows: string[][]): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows
    .map((r) => `<tr>${r.map((c) => `<td class="num">${c}</td>`).join('')}</tr>`)
    .join('\n');
  const thead = head.some((h) => h !== '') ? `<thead><tr>${th}</tr></thead>` : '';
  return `<table>${thead}<tbody>\n${body}\n</tbody></table>`;
}

export function renderReportHtml(page: ReportPage): string {
  const m = page.metrics;
  const chart = (name: string) => {
    const c = page.charts.find((x) => x.name === name);
    return c ? `<div class="chart" id="plot-${escapeHtml(c.name)}">${c.svg}</div>` : '';
  };
  const sections: string[] = [];
  sections.push(
    `<h1>${escapeHtml(page.title)}</h1><p class="sub">${escapeHtml(page.subtitle)}</p>`,
  );
  sections.push(
    `<div class="kpi"><div>${escapeHtml(page.evaluatedSplit)} accuracy<b>${pct(m.accuracy)}</b></div><div>${escapeHtml(page.evaluatedSplit)} loss<b>${fixed(m.loss)}</b></div><div>macro F1<b>${fixed(m.macro.f1, 3)}</b></div><div>images evaluated<b>${m.samples}</b></div></div>`,
  );
  sections.push(
    `<h2>Model</h2>${table(
      ['', ''],
      page.facts.map(([k, v]) => [escapeHtml(k), escapeHtml(v)]),
    )}`,
  );
  if (page.epochs && page.epochs.length > 0) {
    sections.push(
      `<h2>Training</h2><div class="grid">${chart('loss')}${chart('accuracy')}</div>${chart('epoch-time')}`,
    );
    const keys = [...new Set(page.epochs.flatMap((e) => Object.keys(e.logs)))].sort();
    sections.push(
      table(
        ['epoch', ...keys, 'seconds'],
        page.epochs.map((e) => [
          String(e.epoch),
          ...keys.map((k) => fixed(e.logs[k] ?? Number.NaN)),
          e.seconds.toFixed(1),
        ]),
      ),
    );
  }
  sections.push(
    `<h2>Images per class and split</h2>${table(
      ['class', ...page.counts.map((c) => c.split)],
      [
        ...page.classNames.map((name, i) => [
          escapeHtml(name),
          ...page.counts.map((c) => String(c.perClass[i] ?? 0)),
        ]),
        [
          '<b>total</b>',
          ...page.counts.map((c) => `<b>${c.perClass.reduce((a, b) => a + b, 0)}</b>`),
        ],
      ],
    )}`,
  );
  sections.push(
    `<h2>Evaluation on ${escapeHtml(page.evaluatedSplit)}</h2><div class="grid">${chart('confusion-matrix')}${chart('per-class')}</div>`,
  );
  sections.push(
    table(
      ['class', 'precision', 'recall', 'F1', 'images'],
      [
        ...m.perClass.map((s) => [
          escapeHtml(s.className),
          fixed(s.precision, 3),
          fixed(s.recall, 3),
          fixed(s.f1, 3),
          String(s.support),
        ]),
        [
          '<b>macro average</b>',
          fixed(m.macro.precision, 3),
          fixed(m.macro.recall, 3),
          fixed(m.macro.f1, 3),
          String(m.samples),
        ],
      ],
    ),
  );
  if (m.mistakes.length > 0) {
    const figures = m.mistakes.map((x, i) => {
      const src = page.thumbnails[i];
      const img = src
        ? `<img src="${src}" alt="${escapeHtml(x.file)}">`
        : '<div>(unreadable)</div>';
      return `<figure>${img}<figcaption><b>${escapeHtml(x.predictedClass)}</b> ${pct(x.confidence)} (true: ${escapeHtml(x.trueClass)}, ${pct(x.trueProbability)})<br>${escapeHtml(x.file)}</figcaption></figure>`;
    });
    sections.push(
      `<h2>Most confidently wrong</h2><div class="mistakes">${figures.join('\n')}</div>`,
    );
  } else {
    sections.push(
      `<h2>Most confidently wrong</h2><p>No mistakes on ${escapeHtml(page.evaluatedSplit)}.</p>`,
    );
  }
  if (page.config) {
    sections.push(
      `<h2>Configuration</h2>${table(
        ['setting', 'value'],
        Object.entries(page.config).map(([k, v]) => [
          escapeHtml(k),
          escapeHtml(typeof v === 'string' ? v : JSON.stringify(v)),
        ]),
      )}`,
    );
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(page.title)}</title><style>${CSS}</style></head>
<body>
${sections.join('\n')}
</body></html>
`;
}

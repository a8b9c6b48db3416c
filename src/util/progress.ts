/**
 * Progress reporting for long steps (downloads, epochs, feature extraction): a cli-progress bar on
 * a terminal, a few plain lines otherwise, nothing when quiet.
 */
import cliProgress from 'cli-progress';
import { isQuiet } from './log.js';

export interface Progress {
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Number of units at completion. */
  total: number;
  /** Shown before the bar. */
  label: string;
  /** Unit shown after the count, e.g. 'MB' or 'batches'. Default ''. */
  unit?: string;
  /** Extra text after the bar, e.g. '{loss}'. cli-progress payload syntax. */
  suffix?: string;
  /** Where to draw. Default process.stderr. */
  stream?: NodeJS.WriteStream;
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  if (isQuiet()) return { update() {}, stop() {} };
  if (!stream.isTTY) {
    // Plain lines when not a terminal: the start and the end, never a redraw.
    stream.write(`${options.label}: 0/${options.total}${options.unit ? ` ${options.unit}` : ''}\n`);
    let last = 0;
    return {
      update(value) {
        last = value;
      },
      stop() {
        stream.write(
          `${options.label}: ${last}/${options.total}${options.unit ? ` ${options.unit}` : ''}\n`,
        );
      },
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${options.label} [{bar}] {value}/{total}${options.unit ? ` ${options.unit}` : ''} {eta_formatted}${options.suffix ? ` ${options.suffix}` : ''}`,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(options.total, 0);
  return {
    update(value, payload) {
      bar.update(value, payload);
    },
    stop() {
      bar.stop();
    },
  };
}

/**
 * Keras's `CSVLogger`: one row per epoch, columns `epoch` then the logs' keys sorted (with `val_`
 * twins added when there is no validation, filled with `NA`). The whole file is rewritten
 * atomically after each epoch, so a crash leaves the previous epochs' rows whole, never a half line.
 */
import { promises as fsp } from 'node:fs';
import { invalidParameterError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { checkBoolean } from '../util/validate.js';
import { Callback, type Logs } from './callback.js';
import { pythonFloat } from './format.js';

export interface CSVLoggerOptions {
  /** Field separator. Default `','`. */
  separator?: string;
  /** Keep an existing file's rows and add to them (resumed training). Default false: overwrite. */
  append?: boolean;
}

/**
 * Streams epoch results to a CSV file.
 * @example
 * await fit(model, trainIter, { epochs: 10, callbacks: [new CSVLogger('run/history.csv')] });
 */
export class CSVLogger extends Callback {
  readonly filename: string;
  readonly separator: string;
  readonly append: boolean;
  private keys: string[] | undefined;
  private content = '';
  private needsHeader = true;

  constructor(filename: string, options: CSVLoggerOptions = {}) {
    super();
    if (typeof filename !== 'string' || filename === '') {
      throw invalidParameterError('filename', 'non-empty path string', filename);
    }
    const separator = options.separator ?? ',';
    if (
      typeof separator !== 'string' ||
      separator.length !== 1 ||
      separator === '"' ||
      separator === '\n'
    ) {
      throw invalidParameterError(
        'separator',
        'one character other than a quote or newline',
        separator,
      );
    }
    this.filename = filename;
    this.separator = separator;
    this.append = checkBoolean('append', options.append ?? false);
  }

  override async onTrainBegin(): Promise<void> {
    this.keys = undefined;
    this.content = '';
    this.needsHeader = true;
    if (this.append) {
      const existing = await fsp.readFile(this.filename, 'utf8').catch(() => '');
      if (existing.length > 0) {
        this.content = existing.endsWith('\n') ? existing : `${existing}\n`;
        this.needsHeader = false;
      }
    }
  }

  private field(value: string): string {
    return /["\r\n]/.test(value) || value.includes(this.separator)
      ? `"${value.replace(/"/g, '""')}"`
      : value;
  }

  override async onEpochEnd(epoch: number, logs: Logs = {}): Promise<void> {
    if (this.keys === undefined) {
      this.keys = Object.keys(logs).sort();
      if (this.keys.length > 0 && !this.keys.some((k) => k.startsWith('val_'))) {
        this.keys.push(...this.keys.map((k) => `val_${k}`));
      }
    }
    if (this.needsHeader) {
      this.content += `${['epoch', ...this.keys].map((k) => this.field(k)).join(this.separator)}\n`;
      this.needsHeader = false;
    }
    const row = [
      String(epoch),
      ...this.keys.map((k) => (k in logs ? pythonFloat(logs[k]!) : 'NA')),
    ];
    this.content += `${row.map((v) => this.field(v)).join(this.separator)}\n`;
    await writeFileAtomic(this.filename, this.content);
  }
}

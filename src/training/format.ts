/**
 * Python's `str.format` for checkpoint paths, as Keras's ModelCheckpoint fills them:
 * `'weights.{epoch:02d}-{val_loss:.2f}.h5'`. Fields are `{name}` or `{name:spec}` with Python's
 * spec `[[fill]align][sign][0][width][.precision][type]`, types `d f F e E g G %` (and none);
 * `{{` and `}}` are literal braces.
 */
import { XferError } from '../errors.js';
import { toSnakeCase } from './names.js';

const SPEC = /^(?:(.)?([<>=^]))?([+\- ])?(0)?(\d+)?(?:\.(\d+))?([dfFeEgG%])?$/;

/**
 * `toFixed` / `toExponential` rounded as Python rounds: both round the exact binary value, but on
 * an exact tie (0.125 to 2 places) JavaScript rounds up and Python to even ('0.12').
 */
function pythonRound(value: number, precision: number, kind: 'f' | 'e'): string {
  const short = kind === 'f' ? value.toFixed(precision) : value.toExponential(precision);
  if (!Number.isFinite(value) || Math.abs(value) >= 1e21 || precision > 60) return short;
  // 40 more digits show whether the dropped part is exactly one half.
  const long = kind === 'f' ? value.toFixed(precision + 40) : value.toExponential(precision + 40);
  const [mantissa = '', exponent] = long.split('e');
  const dot = mantissa.indexOf('.');
  if (!/^50*$/.test(mantissa.slice(dot + 1 + precision))) return short;
  const kept = mantissa.slice(0, precision === 0 ? dot : dot + 1 + precision);
  if (Number(kept[kept.length - 1]) % 2 !== 0) return short;
  return exponent === undefined ? kept : `${kept}e${exponent}`;
}

/** Python's `f` format of a number. */
export function pythonFixed(value: number, precision: number): string {
  return pythonRound(value, precision, 'f');
}

/** Python's exponent notation: at least two exponent digits (`1.5e-05`, not `1.5e-5`). */
export function pythonExponential(value: number, precision: number): string {
  return pythonRound(value, precision, 'e').replace(/e([+-])(\d)$/, 'e$10$2');
}

function pythonGeneral(value: number, precision: number, upper: boolean): string {
  const p = precision === 0 ? 1 : precision;
  if (value === 0) return '0';
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  let text: string;
  if (exponent < -4 || exponent >= p) {
    text = pythonExponential(value, p - 1).replace(/\.?0+e/, 'e');
  } else {
    text = pythonFixed(value, Math.max(0, p - 1 - exponent));
    if (text.includes('.')) text = text.replace(/\.?0+$/, '');
  }
  return upper ? text.toUpperCase() : text;
}

/** Python's `str(x)` for a float: shortest repr, with `.0` on integral values. */
export function pythonFloat(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  return Number.isInteger(value) ? `${value}.0` : String(value);
}

function formatNumber(value: number, spec: string, isInteger: boolean, field: string): string {
  const match = SPEC.exec(spec);
  if (!match) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `invalid format spec '${spec}' in field {${field}:${spec}}`,
      {
        field,
        spec,
      },
    );
  }
  const [, fill, align, sign, zero, widthText, precisionText, type] = match;
  const precision = precisionText === undefined ? 6 : Number(precisionText);
  const magnitude = Math.abs(value);
  let body: string;
  if (!Number.isFinite(value)) {
    body = Number.isNaN(value) ? 'nan' : 'inf';
  } else {
    switch (type) {
      case 'd':
        if (!Number.isInteger(value)) {
          throw new XferError(
            'INVALID_ARGUMENT',
            `format code 'd' needs an integer, but {${field}} is ${value}; use a float spec such as {${field}:.4f}`,
            { field, value },
          );
        }
        body = String(magnitude);
        break;
      case 'f':
      case 'F':
        body = pythonFixed(magnitude, precision);
        break;
      case 'e':
      case 'E':
        body = pythonExponential(magnitude, precision);
        if (type === 'E') body = body.toUpperCase();
        break;
      case 'g':
      case 'G':
        body = pythonGeneral(magnitude, precision, type === 'G');
        break;
      case '%':
        body = `${pythonFixed(magnitude * 100, precision)}%`;
        break;
      default:
        body = isInteger ? String(magnitude) : pythonFloat(magnitude);
        if (precisionText !== undefined && !isInteger)
          body = pythonGeneral(magnitude, precision, false);
    }
  }
  const negative = value < 0 || Object.is(value, -0);
  const signText = negative ? '-' : sign === '+' ? '+' : sign === ' ' ? ' ' : '';
  const width = widthText === undefined ? 0 : Number(widthText);
  const padLength = Math.max(0, width - signText.length - body.length);
  if (padLength === 0) return signText + body;
  if (zero !== undefined && align === undefined) return signText + '0'.repeat(padLength) + body;
  const padChar = fill ?? ' ';
  const pad = padChar.repeat(padLength);
  switch (align ?? '>') {
    case '<':
      return signText + body + pad;
    case '^': {
      const left = padChar.repeat(Math.floor(padLength / 2));
      return left + signText + body + padChar.repeat(padLength - left.length);
    }
    case '=':
      return signText + pad + body;
    default:
      return pad + signText + body;
  }
}

/**
 * Fills `template`'s fields from `values`. Integers (epoch, batch) are `integerKeys`; other values
 * format as Python floats. A field naming a missing key throws, listing the keys available.
 * @example
 * formatPath('w.{epoch:02d}-{val_loss:.2f}.h5', { epoch: 3, val_loss: 0.41666 }, ['epoch']);
 * // 'w.03-0.42.h5'
 */
export function formatPath(
  template: string,
  values: Record<string, number>,
  integerKeys: readonly string[] = ['epoch', 'batch'],
): string {
  return template.replace(
    /\{\{|\}\}|\{([^{}:]*)(?::([^{}]*))?\}/g,
    (whole, name?: string, spec?: string) => {
      if (whole === '{{') return '{';
      if (whole === '}}') return '}';
      const key = toSnakeCase((name ?? '').trim());
      const value = values[key];
      if (value === undefined) {
        throw new XferError(
          'INVALID_ARGUMENT',
          `cannot fill {${name}} in the path '${template}': no value named '${key}'. Available: ${Object.keys(values).join(', ')}`,
          { template, field: name, available: Object.keys(values) },
        );
      }
      return formatNumber(value, spec ?? '', integerKeys.includes(key), key);
    },
  );
}

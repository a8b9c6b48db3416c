/** Small argument checks for the public boundary; internals trust their callers. */
import { invalidParameterError } from '../errors.js';

export function checkPositiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw invalidParameterError(name, 'positive integer', value);
  }
  return value;
}

export function checkNonNegativeNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalidParameterError(name, 'non-negative number', value);
  }
  return value;
}

export function checkNumberInRange(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidParameterError(name, `number between ${min} and ${max}`, value);
  }
  return value;
}

export function checkOneOf<T extends string>(
  name: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidParameterError(name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  }
  return value as T;
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidParameterError(name, 'boolean', value);
  return value;
}

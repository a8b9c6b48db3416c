/** Option parsers for commander: each turns a flag's text into a checked value or a usage error. */
import { InvalidArgumentError } from 'commander';

export function positiveInteger(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(value) || value <= 0) {
    throw new InvalidArgumentError(`expected a positive integer, got '${text}'.`);
  }
  return value;
}

export function nonNegativeInteger(text: string): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new InvalidArgumentError(`expected a non-negative integer, got '${text}'.`);
  }
  return Number(text);
}

export function positiveNumber(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`expected a positive number, got '${text}'.`);
  }
  return value;
}

/** '224,224,3' → [224, 224, 3] */
export function inputShape(text: string): [number, number, number] {
  const parts = text.split(/[,x]/).map((p) => p.trim());
  if (parts.length !== 3 || parts.some((p) => !/^\d+$/.test(p) || Number(p) <= 0)) {
    throw new InvalidArgumentError(
      `expected height,width,channels such as 224,224,3, got '${text}'.`,
    );
  }
  return parts.map(Number) as [number, number, number];
}

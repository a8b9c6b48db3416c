/**
 * A tfjs model's weights in the order and under the names Keras's h5 format uses. Keras writes and
 * assigns a layer's weights as `layer.trainable_weights + layer.non_trainable_weights`
 * (`_legacy_weights`); for a nested model that order depends on whether it is frozen, and tfjs's
 * own `Container.weights` differs from Keras for a frozen one, so the order is computed here.
 */
import type * as tf from '../engine/tf.js';

export type Layer = tf.LayersModel['layers'][number];
type Variable = tf.LayerVariable;

/** A model used as a layer (functional or Sequential): tfjs's `Container`. */
export function isContainer(layer: Layer): layer is tf.LayersModel {
  return Array.isArray((layer as { layers?: unknown }).layers);
}

/** The layers of `layer` that own variables themselves, in order, looking through nested models. */
export function leafLayers(layer: Layer): Layer[] {
  if (!isContainer(layer)) return [layer];
  return layer.layers.flatMap(leafLayers);
}

function trainablePart(layer: Layer): Variable[] {
  if (!isContainer(layer)) return layer.trainableWeights;
  if (!layer.trainable) return [];
  return layer.layers.flatMap(trainablePart);
}

function nonTrainablePart(layer: Layer): Variable[] {
  if (!isContainer(layer)) return layer.nonTrainableWeights;
  if (layer.trainable) return layer.layers.flatMap(nonTrainablePart);
  // Keras: a frozen model's non-trainable weights are every child's weights, child by child.
  return layer.layers.flatMap((child) => [...trainablePart(child), ...nonTrainablePart(child)]);
}

export interface ModelWeight {
  readonly variable: Variable;
  /** The layer that owns the variable (itself, or a layer inside a nested model). */
  readonly owner: Layer;
  /** `kernel`, `gamma`, `moving_mean`... */
  readonly short: string;
}

function lastComponent(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/** Keras's `_legacy_weights(layer)`: trainable weights, then non-trainable ones. */
export function legacyWeights(layer: Layer): ModelWeight[] {
  const owners = new Map<Variable, Layer>();
  for (const leaf of leafLayers(layer)) {
    for (const variable of leaf.weights) owners.set(variable, leaf);
  }
  return [...trainablePart(layer), ...nonTrainablePart(layer)].map((variable) => ({
    variable,
    owner: owners.get(variable) ?? layer,
    short: lastComponent(variable.originalName),
  }));
}

/**
 * The name Keras 2 gives each weight in the file (`dense/kernel:0`): the owning layer, the weight,
 * TF's `:0`. Inside a nested model two owners can share a name; then the owner's path from `layer`
 * keeps the dataset paths apart.
 */
export function kerasWeightNames(layer: Layer, weights: readonly ModelWeight[]): string[] {
  const simple = weights.map((w) => `${w.owner.name}/${w.short}:0`);
  if (new Set(simple).size === simple.length) return simple;
  const paths = new Map<Layer, string>();
  const walk = (current: Layer, prefix: string): void => {
    if (!isContainer(current)) {
      paths.set(current, prefix);
      return;
    }
    for (const child of current.layers) walk(child, `${prefix}/${child.name}`);
  };
  walk(layer, layer.name);
  return weights.map((w) => `${paths.get(w.owner) ?? w.owner.name}/${w.short}:0`);
}

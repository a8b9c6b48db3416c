/**
 * The tfjs-layers classes xfer's engine patches, found without constructing layers: the ones the
 * package exports, plus the ones it only registers for (de)serialization. Building a throwaway
 * layer to reach a prototype would consume a name from tfjs's auto-naming counters and shift the
 * names of the user's layers.
 */
import { serialization } from '@tensorflow/tfjs-core';
import { LayersModel, LayerVariable, layers, Sequential } from '@tensorflow/tfjs-layers';

/** A tfjs-layers class seen as a bag of prototype members, for patching. */
export type PatchableClass = { prototype: any; className?: string };

/** `tf.layers.Layer`, the base of every layer and model. */
export const LayerClass: PatchableClass = layers.Layer as unknown as PatchableClass;

/** tfjs-layers' `Container`, the (unexported) base of `LayersModel` and `Sequential`. */
export const ContainerClass: PatchableClass = {
  prototype: Object.getPrototypeOf(LayersModel.prototype),
};

export const SequentialClass: PatchableClass = Sequential as unknown as PatchableClass;
export const LayerVariableClass: PatchableClass = LayerVariable as unknown as PatchableClass;

/** A layer class registered with tfjs's serialization map under its Keras class name. */
export function registeredLayerClass(className: string): PatchableClass {
  const entry = serialization.SerializationMap.getMap().classNameMap[className];
  if (entry === undefined) {
    throw new Error(`tfjs-layers has no registered layer class '${className}'.`);
  }
  return entry[0] as unknown as PatchableClass;
}

/** True for any tfjs-layers layer or model. */
export function isLayer(value: unknown): value is layers.Layer {
  return value instanceof layers.Layer;
}

/** True for models (`LayersModel`, `Sequential`: tfjs `Container`s), which own sub-layers. */
export function isContainer(value: unknown): value is LayersModel {
  return value instanceof LayersModel;
}

export function isSequential(value: unknown): value is Sequential {
  return value instanceof Sequential;
}

/** Every layer inside `root` (models recursively, nested models included), root excluded. */
export function* descendantLayers(root: unknown): Generator<any> {
  if (!isContainer(root)) return;
  for (const layer of root.layers) {
    yield layer;
    yield* descendantLayers(layer);
  }
}

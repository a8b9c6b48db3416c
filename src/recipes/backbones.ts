/**
 * What `trainClassifier` needs to know about a backbone: how to build it, what it expects as
 * input, and how to preprocess. Registered applications are resolved by name; the demo passes
 * its own.
 */
import { getApplication } from '../applications/index.js';
import type * as tf from '../engine/tf.js';
import type { Preprocessing } from './preprocessing.js';

export interface BackboneSource {
  /** A name recorded in the run's config.json, e.g. 'vgg16'. */
  name: string;
  /** Square input size used when the user gives none. */
  defaultImageSize: number;
  /** 'rgb' for ImageNet models; the demo backbone is 'grayscale'. */
  colorMode: 'rgb' | 'grayscale';
  preprocessing: Preprocessing;
  /** Builds the feature extractor (no top) for `inputShape`, loading `weights` (null: random). */
  build(options: {
    inputShape: [number, number, number];
    weights: string | null;
  }): Promise<tf.LayersModel>;
}

/** A registered application (any case: 'vgg16', 'VGG16', 'mobilenet_v2') as a backbone. */
export function applicationBackbone(name: string): BackboneSource {
  const spec = getApplication(name);
  return {
    name: spec.name,
    defaultImageSize: spec.defaultInputSize,
    colorMode: 'rgb',
    preprocessing: { mode: spec.preprocessMode },
    build: ({ inputShape, weights }) => spec.build({ includeTop: false, inputShape, weights }),
  };
}

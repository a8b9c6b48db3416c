/**
 * The tfjs namespace xfer runs on: tfjs-core plus tfjs-layers, as the `@tensorflow/tfjs` union
 * package composes them. Exported from the library as `tf`, so users and xfer share one engine.
 */
export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';

// Keras's semantics on tfjs-layers' prototypes, wherever tfjs-layers is used through xfer:
// trainable flags and weights, frozen BatchNormalization, no gradient work for frozen layers.
import './freezing.js';
import './batchnorm.js';
import './lazy-gradients.js';

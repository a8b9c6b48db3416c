/**
 * Run folders for the serve tests, built by hand in the format `trainClassifier` writes
 * (model/, classes.json, config.json): the serve tests need a model to serve, not a trained one,
 * and building one takes a second where training takes tens on a busy machine.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../../src/engine/backend.js';
import * as tf from '../../src/engine/tf.js';
import { applicationBackbone } from '../../src/recipes/backbones.js';
import type { Preprocessing } from '../../src/recipes/preprocessing.js';
import { RUN_FILES, type RunConfig, writeJson } from '../../src/recipes/run-folder.js';
import { saveModel } from '../../src/weights/index.js';

export interface HandRunOptions {
  classNames: string[];
  imageSize?: number;
  preprocessing?: Preprocessing;
  colorMode?: 'rgb' | 'grayscale';
  seed?: number;
  /**
   * 'mobilenet_v2': the registered MobileNetV2 (random weights) under the head trainClassifier
   * puts on it, in its config. Default: a one-conv net, which loads and predicts in milliseconds.
   */
  backbone?: 'mobilenet_v2';
}

/**
 * A small conv net (Conv2D 3x3 + GlobalAveragePooling2D + Dense) with seeded weights, saved as a
 * run folder. Two classes get one sigmoid unit, as `trainClassifier` does.
 */
export async function buildRunFolder(dir: string, options: HandRunOptions): Promise<string> {
  await initBackend();
  const imageSize = options.imageSize ?? 32;
  const colorMode = options.colorMode ?? 'rgb';
  const preprocessing = options.preprocessing ?? { mode: 'tf' };
  const seed = options.seed ?? 7;
  const binary = options.classNames.length === 2;
  const head = tf.layers.dense({
    units: binary ? 1 : options.classNames.length,
    activation: binary ? 'sigmoid' : 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: seed + 3 }),
    name: 'output_layer',
  });
  const channels = colorMode === 'grayscale' ? 1 : 3;
  const source = options.backbone ? applicationBackbone(options.backbone) : undefined;
  const features = source
    ? await source.build({ inputShape: [imageSize, imageSize, channels], weights: null })
    : tf.layers.conv2d({
        inputShape: [imageSize, imageSize, channels],
        filters: 8,
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
        biasInitializer: tf.initializers.randomUniform({
          minval: -0.1,
          maxval: 0.1,
          seed: seed + 1,
        }),
        name: 'conv',
      });
  if (source) (features as tf.LayersModel).trainable = false;
  const model = tf.sequential({
    name: 'xfer_classifier',
    layers: [
      features,
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      head,
    ],
  });
  await fsp.mkdir(dir, { recursive: true });
  const config: RunConfig = {
    xferVersion: '0.1.0',
    backbone: source?.name ?? 'test_conv',
    weights: null,
    imageSize,
    colorMode,
    preprocessing: source?.preprocessing ?? preprocessing,
    classMode: binary ? 'binary' : 'categorical',
    epochs: 0,
    batchSize: 1,
    learningRate: 0.001,
    augment: false,
    patience: 1,
    seed,
    dataDir: '',
  };
  await writeJson(path.join(dir, RUN_FILES.config), config);
  await writeJson(path.join(dir, RUN_FILES.classes), options.classNames);
  await saveModel(model, path.join(dir, RUN_FILES.model));
  model.dispose();
  return dir;
}

/**
 * The vocabulary every backbone shares: the options a builder takes (Keras's constructor
 * arguments in camelCase) and the spec each family declares beside its builder (timm's pretrained
 * config: weight files, input size, preprocessing, the layer names other modules rely on).
 */
import type * as tf from '../engine/tf.js';
import type { PreprocessMode } from './preprocess.js';

/** Options every Keras Application builder takes, with Keras's meaning and defaults. */
export interface ApplicationOptions {
  /**
   * Whether to include the classifier at the top of the network (Keras's `include_top`).
   * `false` gives the convolutional feature extractor only, the usual start of transfer learning.
   * Default `true`.
   */
  includeTop?: boolean;
  /**
   * `'imagenet'` (pretrained on ImageNet: downloaded once, then cached), `null` (random
   * initialization), or the path or URL of a weights file to load. Default `'imagenet'`.
   */
  weights?: 'imagenet' | null | string;
  /**
   * A symbolic tensor (the output of `tf.input()` or of a layer) to use as the image input, e.g. to
   * share one input between several networks. Default: a new input of `inputShape`.
   */
  inputTensor?: tf.SymbolicTensor;
  /**
   * `[height, width, channels]`, channels last. With `includeTop: true` and ImageNet weights it
   * must be the model's default (`[224, 224, 3]`); otherwise height and width must be at least the
   * model's minimum (32). Default: the default size with `includeTop`, `[null, null, 3]` without.
   */
  inputShape?: [number, number, number];
  /**
   * Pooling applied to the last feature map when `includeTop` is `false`: `'avg'` (global average
   * pooling, a 2-D output), `'max'` (global max pooling) or `null` (the 4-D feature map). Ignored,
   * with a warning, when `includeTop` is `true`. Default `null`.
   */
  pooling?: 'avg' | 'max' | null;
  /** Number of classes of the top classifier; must be 1000 with ImageNet weights. Default 1000. */
  classes?: number;
  /**
   * Activation of the top layer (a tfjs activation name); `null` returns logits. With pretrained
   * weights only `'softmax'` and `null` are allowed. Ignored without top. Default `'softmax'`.
   */
  classifierActivation?: string | null;
  /** Name of the model. Default: Keras's (`'vgg16'`, `'resnet50'`, `'mobilenet_1.00_224'`...). */
  name?: string;
}

/** One pretrained weight file: where Keras downloads it from, and its recorded hash. */
export interface WeightFile {
  /** The URL Keras's source downloads (its file name is the cache file name). */
  url: string;
  /**
   * The hash Keras's source records (md5 or sha256, hex). Keras records none for MobileNet and
   * MobileNetV2, so the file is then cached without a check.
   */
  fileHash?: string;
}

/** A pretrained weight set, with and without the top classifier. */
export interface WeightSet {
  top: WeightFile;
  noTop: WeightFile;
}

/** A backbone family member, as the registry knows it. */
export interface ApplicationSpec {
  /** Keras's module name, lower case: `'vgg16'`, `'resnet50'`, `'mobilenet_v2'`... */
  name: string;
  /** Keras's class name: `'VGG16'`, `'ResNet50'`, `'MobileNetV2'`... */
  className: string;
  /** The builder, e.g. `VGG16`. */
  build: (options?: ApplicationOptions) => Promise<tf.LayersModel>;
  /** The input preprocessing the pretrained weights expect (see `preprocessInput`). */
  preprocessMode: PreprocessMode;
  /** Height and width the pretrained classifier was trained at. */
  defaultInputSize: number;
  /** Smallest height and width the network accepts. */
  minInputSize: number;
  /** Pretrained weights, for the default configuration (alpha 1.0, 224x224 for MobileNets). */
  weightSets: { imagenet: WeightSet };
  /** The first convolution, the one that sees the image. */
  firstConvLayer: string;
  /** The last layer of the feature extractor: the output with `includeTop: false`. */
  featureLayer: string;
  /** The output layer of the top classifier. */
  classifierLayer: string;
  /**
   * Keras's parameter counts with the default options (`model.count_params()`), with the top
   * classifier and without it, so listings need not build the network. Tests check them against
   * real builds.
   */
  parameters?: { top: number; noTop: number };
}

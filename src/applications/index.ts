/** Keras Applications: pretrained backbones, their registry, preprocessing and ImageNet labels. */
export type { ImagenetPrediction } from './imagenet.js';
export { decodePredictions } from './imagenet.js';
export type { ApplicationModule } from './keras-module.js';
export type { MobileNetOptions } from './mobilenet.js';
export { MobileNet, mobilenet } from './mobilenet.js';
export type { MobileNetV2Options } from './mobilenet-v2.js';
export { MobileNetV2, mobilenetV2 } from './mobilenet-v2.js';
export type { PreprocessMode } from './preprocess.js';
export { preprocessInput } from './preprocess.js';
export { getApplication, listApplications } from './registry.js';
export { ResNet50, resnet50 } from './resnet.js';
export type { ApplicationOptions, ApplicationSpec, WeightFile, WeightSet } from './spec.js';
export { VGG16, VGG19, vgg16, vgg19 } from './vgg.js';

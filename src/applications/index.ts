/** Keras Applications: pretrained backbones, their registry, preprocessing and ImageNet labels. */
export type { ConvNeXtOptions } from './convnext.js';
export { ConvNeXtBase, ConvNeXtSmall, ConvNeXtTiny, convnext } from './convnext.js';
export { DenseNet121, DenseNet169, DenseNet201, densenet } from './densenet.js';
export {
  EfficientNetB0,
  EfficientNetB1,
  EfficientNetB2,
  EfficientNetB3,
  EfficientNetB4,
  EfficientNetB5,
  EfficientNetB6,
  EfficientNetB7,
  efficientnet,
} from './efficientnet.js';
export type { EfficientNetV2Options } from './efficientnet-v2.js';
export {
  EfficientNetV2B0,
  EfficientNetV2B1,
  EfficientNetV2B2,
  EfficientNetV2B3,
  EfficientNetV2S,
  efficientnetV2,
} from './efficientnet-v2.js';
export type { ImagenetPrediction } from './imagenet.js';
export { decodePredictions } from './imagenet.js';
export { InceptionV3, inceptionV3 } from './inception-v3.js';
export type { ApplicationModule } from './keras-module.js';
export type { MobileNetOptions } from './mobilenet.js';
export { MobileNet, mobilenet } from './mobilenet.js';
export type { MobileNetV2Options } from './mobilenet-v2.js';
export { MobileNetV2, mobilenetV2 } from './mobilenet-v2.js';
export type { MobileNetV3Options } from './mobilenet-v3.js';
export { MobileNetV3Large, MobileNetV3Small, mobilenetV3 } from './mobilenet-v3.js';
export { NASNetMobile, nasnet } from './nasnet.js';
export type { PreprocessMode } from './preprocess.js';
export { preprocessInput } from './preprocess.js';
export { getApplication, listApplications } from './registry.js';
export { ResNet50, ResNet101, ResNet152, resnet, resnet50 } from './resnet.js';
export { ResNet50V2, ResNet101V2, ResNet152V2, resnetV2 } from './resnet-v2.js';
export type { ApplicationOptions, ApplicationSpec, WeightFile, WeightSet } from './spec.js';
// torchvision-layout networks for `.safetensors` state dicts (not in the Keras registry).
export { TorchvisionMobileNetV2, torchvisionMobilenetV2 } from './torchvision-mobilenet-v2.js';
export { TorchvisionResNet50, torchvisionResnet50 } from './torchvision-resnet.js';
export { VGG16, VGG19, vgg16, vgg19 } from './vgg.js';
export { Xception, xception } from './xception.js';

/**
 * Every backbone xfer can build, by Keras's module name. Adding a family is one file that exports
 * its spec, plus one line here.
 */
import { invalidParameterError, unknownNameError } from '../errors.js';
import { CONVNEXT_SPECS } from './convnext.js';
import { DENSENET_SPECS } from './densenet.js';
import { EFFICIENTNET_SPECS } from './efficientnet.js';
import { EFFICIENTNET_V2_SPECS } from './efficientnet-v2.js';
import { INCEPTION_V3_SPEC } from './inception-v3.js';
import { MOBILENET_SPEC } from './mobilenet.js';
import { MOBILENET_V2_SPEC } from './mobilenet-v2.js';
import { MOBILENET_V3_SPECS } from './mobilenet-v3.js';
import { NASNET_MOBILE_SPEC } from './nasnet.js';
import { RESNET_SPECS } from './resnet.js';
import { RESNET_V2_SPECS } from './resnet-v2.js';
import type { ApplicationSpec } from './spec.js';
import { VGG16_SPEC, VGG19_SPEC } from './vgg.js';
import { XCEPTION_SPEC } from './xception.js';

const SPECS: readonly ApplicationSpec[] = [
  VGG16_SPEC,
  VGG19_SPEC,
  ...RESNET_SPECS,
  MOBILENET_SPEC,
  MOBILENET_V2_SPEC,
  ...RESNET_V2_SPECS,
  ...DENSENET_SPECS,
  INCEPTION_V3_SPEC,
  XCEPTION_SPEC,
  ...EFFICIENTNET_SPECS,
  ...MOBILENET_V3_SPECS,
  ...EFFICIENTNET_V2_SPECS,
  ...CONVNEXT_SPECS,
  NASNET_MOBILE_SPEC,
];

// 'mobilenet_v2', 'MobileNetV2' and 'mobilenetv2' all name the same backbone.
function normalize(name: string): string {
  return name.toLowerCase().replace(/[-_\s]/g, '');
}

const BY_NAME = new Map<string, ApplicationSpec>();
for (const spec of SPECS) {
  BY_NAME.set(normalize(spec.name), spec);
  BY_NAME.set(normalize(spec.className), spec);
}

/**
 * The spec of a backbone, by Keras's module name or class name in any case (`'vgg16'`, `'VGG16'`,
 * `'mobilenet_v2'`, `'MobileNetV2'`, `'mobilenetv2'`). Throws an `UNKNOWN_NAME` error listing the
 * known names, with the closest as a suggestion, otherwise.
 * @example
 * const spec = getApplication('MobileNetV2');
 * const backbone = await spec.build({ includeTop: false, weights: null });
 */
export function getApplication(name: string): ApplicationSpec {
  if (typeof name !== 'string') throw invalidParameterError('name', 'a backbone name', name);
  const spec = BY_NAME.get(normalize(name));
  if (!spec) {
    throw unknownNameError(
      'backbone',
      name,
      SPECS.map((s) => s.name),
    );
  }
  return spec;
}

/**
 * All registered backbones, in a stable order.
 * @example
 * listApplications().map((spec) => spec.name); // ['vgg16', 'vgg19', 'resnet50', 'mobilenet', 'mobilenet_v2']
 */
export function listApplications(): ApplicationSpec[] {
  return [...SPECS];
}

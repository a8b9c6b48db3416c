/**
 * The seed's program, written with xfer: VGG16 as a frozen backbone, GlobalAveragePooling2D and a
 * sigmoid Dense head, trained on cats_and_dogs_small with augmentation, ModelCheckpoint and
 * EarlyStopping, evaluated on test/, then used to classify one image.
 *
 *   npx tsx examples/cats-vs-dogs.ts [data-dir] [--weights imagenet|none|<file>] [--image-size 224]
 *       [--epochs 10] [--batch-size 100] [--image <file>]
 *
 * Offline, pass --weights with a local copy of Keras's
 * vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (or `none` for random weights).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  Adam,
  compile,
  EarlyStopping,
  evaluate,
  fit,
  ImageDataGenerator,
  ModelCheckpoint,
  predictImage,
  summary,
  tf,
  VGG16,
  vgg16,
} from 'xfer';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    weights: { type: 'string', default: 'imagenet' },
    'image-size': { type: 'string', default: '224' },
    epochs: { type: 'string', default: '10' },
    'batch-size': { type: 'string', default: '100' },
    image: { type: 'string' },
  },
});

const DATA_DIR = positionals[0] ?? 'data/cats_and_dogs_small';
const IMAGE_SIZE = Number(values['image-size']);
const N_EPOCH = Number(values.epochs);
const N_BATCH = Number(values['batch-size']);
const LEARNING_RATE = 0.001;
const WEIGHTS = values.weights === 'none' ? null : values.weights!;

type Preprocess = (x: tf.Tensor) => tf.Tensor;

/** The seed's predict_func: (probability, class index, class name) for one image. */
async function predictFunc(imagePath: string, model: tf.LayersModel, preprocessInput: Preprocess) {
  const classNames = ['cat', 'dog'];
  return predictImage(imagePath, model, preprocessInput, {
    classNames,
    targetSize: [IMAGE_SIZE, IMAGE_SIZE],
  });
}

/** The seed's get_generator: augmented train iterator, plain validation and test iterators. */
async function getGenerator(preprocessInput: Preprocess) {
  const trainGen = new ImageDataGenerator({
    preprocessingFunction: preprocessInput as (x: tf.Tensor3D) => tf.Tensor3D,
    rotationRange: 40,
    widthShiftRange: 0.2,
    heightShiftRange: 0.2,
    zoomRange: 0.2,
    horizontalFlip: true,
    fillMode: 'constant',
  });
  const valGen = new ImageDataGenerator({
    preprocessingFunction: preprocessInput as (x: tf.Tensor3D) => tf.Tensor3D,
  });
  const testGen = new ImageDataGenerator({
    preprocessingFunction: preprocessInput as (x: tf.Tensor3D) => tf.Tensor3D,
  });
  const flow = {
    targetSize: [IMAGE_SIZE, IMAGE_SIZE] as [number, number],
    batchSize: N_BATCH,
    classMode: 'binary' as const,
  };
  const trainIter = await trainGen.flowFromDirectory(path.join(DATA_DIR, 'train'), flow);
  const valIter = await valGen.flowFromDirectory(path.join(DATA_DIR, 'validation'), flow);
  const testIter = await testGen.flowFromDirectory(path.join(DATA_DIR, 'test'), flow);
  return [trainIter, valIter, testIter] as const;
}

/** The seed's get_model_1: frozen backbone, GAP, Dense(1, sigmoid), Adam + binary crossentropy. */
function getModel1(backbone: tf.LayersModel): tf.Sequential {
  const model = tf.sequential();
  backbone.trainable = false;
  model.add(backbone);
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'output_layer' }));
  compile(model, {
    optimizer: Adam(LEARNING_RATE),
    loss: 'binary_crossentropy',
    metrics: ['accuracy'],
  });
  return model;
}

const [trainIter, valIter, testIter] = await getGenerator(vgg16.preprocessInput);

const backbone = await VGG16({
  includeTop: false,
  weights: WEIGHTS,
  inputShape: [IMAGE_SIZE, IMAGE_SIZE, 3],
});
const model1 = getModel1(backbone);
summary(model1);

const savePath = path.join(os.tmpdir(), 'xfer-cat-dog', 'cat_dog_transfer_learning.weights.h5');
const mcCallback = new ModelCheckpoint(savePath, {
  saveBestOnly: true,
  saveWeightsOnly: true,
  verbose: 1,
});
const esCallback = new EarlyStopping({ patience: 10, verbose: 2 });

await fit(model1, trainIter, {
  epochs: N_EPOCH,
  stepsPerEpoch: trainIter.length,
  validationData: valIter,
  validationSteps: valIter.length,
  callbacks: [mcCallback, esCallback],
});

const testResult = await evaluate(model1, testIter);
console.log('test', testResult);

const imgPath =
  values.image ??
  path.join(
    DATA_DIR,
    'test',
    'dogs',
    testIter.filenames.find((f) => f.startsWith('dogs'))!.split('/')[1]!,
  );
console.log(await predictFunc(imgPath, model1, vgg16.preprocessInput));

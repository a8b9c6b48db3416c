/**
 * Preprocessing as data: a run folder records how its inputs were scaled, so `predict`, `serve`
 * and the CLI apply exactly what training applied without the user passing a function.
 */
import { type PreprocessMode, preprocessInput } from '../applications/index.js';
import * as tf from '../engine/tf.js';

export type Preprocessing =
  /** Keras's `imagenet_utils` modes: 'caffe', 'tf' or 'torch'. */
  | { mode: PreprocessMode }
  /** x * scale + offset, e.g. { scale: 1/255, offset: 0 } for [0, 1] inputs. */
  | { scale: number; offset: number };

export function preprocessingFunction(p: Preprocessing): (x: tf.Tensor) => tf.Tensor {
  if ('mode' in p) return (x) => preprocessInput(x, p.mode);
  return (x) => tf.tidy(() => tf.add(tf.mul(x, p.scale), p.offset));
}

/**
 * Keras 3's `trainable` semantics on tfjs-layers 4.22.0, applied once, on import, by patching
 * tfjs-layers' prototypes (`src/engine/tf.ts` imports this module for its side effect).
 *
 * Why patch rather than wrap: every model xfer touches is a plain tfjs-layers model, built by
 * xfer, loaded from a file or handed in by a user, and tfjs-layers' own `compile`, `fit`,
 * `trainOnBatch`, `summary`, `getWeights` and `save` read these accessors. Fixing the accessors
 * fixes all of them; a wrapper would have to reimplement each.
 *
 * What tfjs-layers does, and why transfer learning breaks on it:
 * - `model.trainable = false` sets the model's own flag and the variable flags of its direct
 *   layers only: `getLayer('block1_conv1').trainable` still reads true, and a model nested two
 *   levels down is not frozen at all.
 * - A model added as the FIRST layer of a `Sequential` is spliced into the Sequential's graph:
 *   `compile` builds an inner `LayersModel` over the nested model's own layers and sets
 *   `inner.trainable = true`, which sets every variable of the "frozen" backbone trainable again.
 *   `sequential([frozenBackbone, gap, dense])` then trains the backbone, with a full backward pass
 *   through it (Conv2DBackpropInput/Filter for every conv layer), as design.md observed.
 *
 * Keras 3 (keras/src/layers/layer.py: the `trainable` setter, `_track_variable`,
 * `trainable_weights`, `non_trainable_weights`, `weights`), reproduced here:
 * - `layer.trainable = v` sets the layer's flag, the flag of each variable the layer created
 *   trainable, and recurses into every sub-layer (for a model: each layer, nested models
 *   included). Variables created non-trainable (BatchNormalization's moving mean and variance)
 *   stay non-trainable whatever the flags.
 * - A trainable variable created by a layer whose flag is false starts non-trainable, so
 *   `conv2d({trainable: false})` and `conv.trainable = false` mean the same thing.
 * - `trainableWeights` is `[]` when the layer's own flag is false; otherwise it is every weight
 *   of the layer and its sub-layers, recursively, whose VARIABLE flag is true.
 *   `nonTrainableWeights` is all weights when the flag is false, else those whose variable flag
 *   is false. Ancestors do not gate: in `outer` (trainable) > `backbone` (frozen) >
 *   `block1_conv1` (set trainable again), `backbone.trainableWeights` is `[]` while
 *   `outer.trainableWeights` holds block1_conv1's kernel and bias, and `outer.fit` trains them.
 *   (Keras 2 gated on every ancestor's flag; Keras 3 does not, and neither can we: tfjs splices
 *   nested models into the outer graph, so the variable flags are the only reliable truth.)
 * - `weights` lists each weight once, in layer order, whatever the flags, so `getWeights()` and
 *   `setWeights()` stay aligned across freezing (tfjs put trainable weights first).
 * - A change of `trainable` after `compile` takes effect at the next `compile`: `fit` updates the
 *   weights collected by `compile` (tfjs's `collectedTrainableWeights`), and tfjs's "Discrepancy
 *   between trainableweights and collected trainable weights" warning stays. For that, a layer
 *   variable's Keras flag no longer lowers the tfjs-core `Variable.trainable` flag that
 *   `optimizer.minimize` filters on; only the compiled list decides what `fit` updates.
 *
 * Layers that define their own weight getters (tfjs's RNN, Bidirectional, TimeDistributed) keep
 * them; models containing them use those getters for their part.
 */
import {
  ContainerClass,
  isContainer,
  LayerClass,
  LayerVariableClass,
  SequentialClass,
} from './layer-classes.js';

interface WeightVariable {
  trainable: boolean;
}

const PATCHED = Symbol.for('xfer.engine.kerasTrainable');

/** >0 while tfjs's `Sequential.build` runs: see `patchSequentialBuild`. */
let shallowTrainableSetter = 0;

const ownWeightGetters = new WeakMap<object, boolean>();

/** Whether a layer's class (below Layer/Container) overrides the weight getters, like RNN. */
function hasOwnWeightGetters(layer: object): boolean {
  const proto = Object.getPrototypeOf(layer) as object | null;
  if (proto === null) return false;
  let custom = ownWeightGetters.get(proto);
  if (custom === undefined) {
    custom = false;
    for (
      let p: object | null = proto;
      p !== null && p !== LayerClass.prototype && p !== ContainerClass.prototype;
      p = Object.getPrototypeOf(p) as object | null
    ) {
      if (Object.hasOwn(p, 'trainableWeights') || Object.hasOwn(p, 'nonTrainableWeights')) {
        custom = true;
        break;
      }
    }
    ownWeightGetters.set(proto, custom);
  }
  return custom;
}

/**
 * Each weight of `root` once, in layer order, mapped to whether it is trainable as seen from a
 * trainable ancestor: its variable flag (Keras 3), or the layer's own getters where it has them.
 */
function weightEntries(root: any): Map<WeightVariable, boolean> {
  const entries = new Map<WeightVariable, boolean>();
  const add = (weights: WeightVariable[], trainable: (w: WeightVariable) => boolean) => {
    for (const w of weights) if (!entries.has(w)) entries.set(w, trainable(w));
  };
  const visit = (layer: any) => {
    if (hasOwnWeightGetters(layer)) {
      add(layer.trainableWeights, () => true);
      add(layer.nonTrainableWeights, () => false);
    } else if (isContainer(layer)) {
      for (const child of layer.layers) visit(child);
    } else {
      add(layer._trainableWeights, (w) => w.trainable);
      add(layer._nonTrainableWeights, (w) => w.trainable);
    }
  };
  visit(root);
  return entries;
}

function selectWeights(layer: any, trainable: boolean): WeightVariable[] {
  const selected: WeightVariable[] = [];
  for (const [w, isTrainable] of weightEntries(layer))
    if (isTrainable === trainable) selected.push(w);
  return selected;
}

function weightGetters(): PropertyDescriptorMap {
  return {
    weights: {
      get(this: any) {
        return [...weightEntries(this).keys()];
      },
    },
    trainableWeights: {
      get(this: any) {
        return this.trainable ? selectWeights(this, true) : [];
      },
    },
    nonTrainableWeights: {
      get(this: any) {
        return this.trainable ? selectWeights(this, false) : [...weightEntries(this).keys()];
      },
    },
  };
}

/** Replaces getters on `proto`, keeping each property's existing setter (tfjs assigns some). */
function defineGetters(proto: object, getters: PropertyDescriptorMap): void {
  for (const [name, descriptor] of Object.entries(getters)) {
    const previous = Object.getOwnPropertyDescriptor(proto, name);
    Object.defineProperty(proto, name, {
      configurable: true,
      enumerable: previous?.enumerable ?? false,
      get: descriptor.get,
      set: previous?.set,
    });
  }
}

function patchContainerSetter(): void {
  const previous = Object.getOwnPropertyDescriptor(ContainerClass.prototype, 'trainable');
  Object.defineProperty(ContainerClass.prototype, 'trainable', {
    configurable: true,
    enumerable: previous?.enumerable ?? false,
    get(this: any) {
      return this.trainable_;
    },
    set(this: any, value: boolean) {
      this.trainable_ = value;
      // A Sequential executes through an inner LayersModel over the same layers; keep its flag in
      // step so that its trainableWeights (what Sequential.compile collects) agree.
      if (this.model != null && isContainer(this.model)) (this.model as any).trainable_ = value;
      if (shallowTrainableSetter > 0) return;
      for (const layer of this.layers ?? []) layer.trainable = value;
    },
  });
}

/**
 * tfjs's `Sequential.build` (run by compile, predict, summary...) creates the inner model and
 * sets `inner.trainable = this.trainable`. Recursing there would unfreeze every layer at each
 * compile, so during build the setter only copies the flag.
 */
function patchSequentialBuild(): void {
  const build = SequentialClass.prototype.build as (...args: unknown[]) => unknown;
  SequentialClass.prototype.build = function (this: unknown, ...args: unknown[]) {
    shallowTrainableSetter++;
    try {
      return build.apply(this, args);
    } finally {
      shallowTrainableSetter--;
    }
  };
}

/** Keras 3 `_track_variable`: a variable created in a frozen layer starts frozen. */
function patchAddWeight(): void {
  const addWeight = LayerClass.prototype.addWeight as (...args: unknown[]) => WeightVariable;
  LayerClass.prototype.addWeight = function (this: any, ...args: unknown[]) {
    const weight = addWeight.apply(this, args);
    if (!this.trainable) weight.trainable = false;
    return weight;
  };
}

/**
 * The Keras flag of a layer variable, apart from tfjs-core's `Variable.trainable`. Lowering the
 * latter would make `fit` skip a weight frozen after `compile` (Keras trains it until the next
 * compile), and make `fit` throw when every collected weight was frozen. The tfjs-core flag is
 * only raised, for a variable created non-trainable and later made trainable.
 */
function patchLayerVariableFlag(): void {
  Object.defineProperty(LayerVariableClass.prototype, 'trainable', {
    configurable: true,
    enumerable: false,
    get(this: any) {
      return this.trainable_;
    },
    set(this: any, value: boolean) {
      this.trainable_ = value;
      if (value && this.val != null && !this.val.trainable) this.val.trainable = true;
    },
  });
}

function applyKerasTrainableSemantics(): void {
  const layerProto = LayerClass.prototype as Record<symbol, unknown>;
  if (layerProto[PATCHED] === true) return;
  layerProto[PATCHED] = true;
  defineGetters(LayerClass.prototype, weightGetters());
  defineGetters(ContainerClass.prototype, weightGetters());
  patchContainerSetter();
  patchSequentialBuild();
  patchAddWeight();
  patchLayerVariableFlag();
}

applyKerasTrainableSemantics();

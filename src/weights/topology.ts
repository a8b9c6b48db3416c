/**
 * Checks a tfjs layers-model topology before tfjs rebuilds it. tfjs's `Container.fromConfig`
 * replays inbound nodes until every one is built and loops forever when one can never be: a layer
 * without a name, a node naming a layer or node that does not exist, or a cycle. A model.json is
 * data from outside, so those are refused here with CORRUPT_FILE instead of hanging the process.
 */
import { XferError } from '../errors.js';

/** Nested models deeper than this are refused (a Keras model nests a few levels at most). */
const MAX_NESTING = 32;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const FUNCTIONAL = new Set(['Model', 'Functional']);
const CONTAINERS = new Set([...FUNCTIONAL, 'Sequential']);

/** A `[layerName, nodeIndex, tensorIndex, kwargs?]` reference, or undefined when malformed. */
function reference(entry: unknown): [string, number] | undefined {
  if (!Array.isArray(entry) || entry.length < 3) return undefined;
  const [name, node, tensor] = entry;
  if (typeof name !== 'string') return undefined;
  if (!Number.isSafeInteger(node) || (node as number) < 0) return undefined;
  if (!Number.isSafeInteger(tensor) || (tensor as number) < 0) return undefined;
  return [name, node as number];
}

class TopologyChecker {
  constructor(private readonly source: string) {}

  fail(what: string): XferError {
    return new XferError(
      'CORRUPT_FILE',
      `${this.source}: the model topology ${what}; the file is damaged or was not written by tfjs or Keras.`,
      { path: this.source },
    );
  }

  /** A layer entry of any container: recurse into nested models. */
  model(entry: unknown, depth: number): void {
    if (depth > MAX_NESTING) throw this.fail(`nests models deeper than ${MAX_NESTING}`);
    if (!isObject(entry)) throw this.fail('has a model that is not an object');
    const className = entry.class_name;
    const config = entry.config;
    if (className === 'Sequential') {
      const layers = Array.isArray(config) ? config : isObject(config) ? config.layers : undefined;
      if (!Array.isArray(layers)) throw this.fail('has a Sequential without a list of layers');
      for (const layer of layers) this.nested(layer, depth);
      return;
    }
    if (typeof className === 'string' && FUNCTIONAL.has(className)) {
      if (!isObject(config)) throw this.fail(`has a ${className} without a config`);
      this.functional(config, depth);
    }
  }

  private nested(layer: unknown, depth: number): void {
    if (!isObject(layer)) throw this.fail('lists a layer that is not an object');
    if (typeof layer.class_name !== 'string') throw this.fail('lists a layer without a class_name');
    this.model(layer, depth + 1);
  }

  private functional(config: Json, depth: number): void {
    const layers = config.layers;
    if (!Array.isArray(layers)) throw this.fail("has a functional model without 'layers'");
    // Nodes each layer has: its inbound nodes, or the one an InputLayer makes.
    const nodeCount = new Map<string, number>();
    const inbound = new Map<string, unknown[]>();
    // A nested model builds node 0 itself (its own inputs); its listed calls are nodes 1, 2...
    const firstCall = new Map<string, number>();
    for (const layer of layers) {
      this.nested(layer, depth);
      // tfjs files each built layer under this outer name, which the nodes refer to.
      const layerName = (layer as Json).name;
      if (typeof layerName !== 'string' || layerName === '') {
        throw this.fail('lists a layer without a name');
      }
      if (nodeCount.has(layerName)) throw this.fail(`lists the layer '${layerName}' twice`);
      const nodes = (layer as Json).inbound_nodes ?? [];
      if (!Array.isArray(nodes))
        throw this.fail(`gives '${layerName}' inbound_nodes that are not a list`);
      const offset = CONTAINERS.has(String((layer as Json).class_name)) ? 1 : 0;
      firstCall.set(layerName, offset);
      nodeCount.set(layerName, Math.max(1, nodes.length + offset));
      inbound.set(layerName, nodes);
    }
    // Every node's inputs must exist; then the nodes must form a DAG (tfjs replays them in order).
    const deps = new Map<string, string[]>();
    const known = (name: string, node: number) => node < (nodeCount.get(name) ?? 0);
    for (const [layerName, nodes] of inbound) {
      nodes.forEach((node, index) => {
        if (!Array.isArray(node)) throw this.fail(`gives '${layerName}' a node that is not a list`);
        const inputs = node.map((entry) => {
          const ref = reference(entry);
          if (ref === undefined || !known(ref[0], ref[1])) {
            throw this.fail(
              `connects '${layerName}' to ${JSON.stringify(entry)}, which is not a node of a listed layer`,
            );
          }
          return `${ref[0]}#${ref[1]}`;
        });
        deps.set(`${layerName}#${index + firstCall.get(layerName)!}`, inputs);
      });
    }
    for (const key of ['input_layers', 'output_layers']) {
      const list = config[key];
      if (list === undefined) continue;
      if (!Array.isArray(list)) throw this.fail(`has '${key}' that is not a list`);
      for (const entry of list) {
        const ref = reference(entry);
        if (ref === undefined || !known(ref[0], ref[1])) {
          throw this.fail(
            `names ${JSON.stringify(entry)} in '${key}', which is not a node of a listed layer`,
          );
        }
      }
    }
    this.acyclic(deps);
  }

  private acyclic(deps: Map<string, string[]>): void {
    const state = new Map<string, 1 | 2>(); // 1 visiting, 2 done
    for (const start of deps.keys()) {
      if (state.get(start) === 2) continue;
      // Iterative depth-first search: a hostile file may chain many thousands of nodes.
      const stack: [string, number][] = [[start, 0]];
      state.set(start, 1);
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        const next = (deps.get(top[0]) ?? [])[top[1]++];
        if (next === undefined) {
          state.set(top[0], 2);
          stack.pop();
        } else if (state.get(next) === 1) {
          throw this.fail(`has a cycle through '${next.split('#')[0]}'`);
        } else if (state.get(next) === undefined) {
          state.set(next, 1);
          stack.push([next, 0]);
        }
      }
    }
  }
}

/**
 * Refuses a topology tfjs could not rebuild (or would loop on): unnamed or duplicate layers,
 * connections to missing layers or nodes, cycles, absurd nesting. `topology` is model.json's
 * `modelTopology` (tfjs's own, or Keras's `{ model_config }` wrapper).
 */
export function checkLayersTopology(topology: unknown, source: string): void {
  const checker = new TopologyChecker(source);
  if (!isObject(topology)) throw checker.fail('is not an object');
  const model = isObject(topology.model_config) ? topology.model_config : topology;
  checker.model(model, 0);
}

/**
 * A PyTorch `.safetensors` state dict as stored layers under Keras's names, through the name map
 * of its architecture (detected from the tensor names, or named by the caller).
 */
import { XferError } from '../errors.js';
import { NAME_MAPS, type NameMap, TRANSFORM_RANK, transformTensor } from './name-maps.js';
import type { SafetensorsFile } from './safetensors.js';
import { formatShape, type StoredLayer, type StoredWeight } from './stored.js';

/** The name map for a file: `layout` when given, else the first whose detector accepts the names. */
export function pickNameMap(st: SafetensorsFile, layout: string | undefined): NameMap {
  const known = NAME_MAPS.map((m) => m.name);
  if (layout !== undefined) {
    const map = NAME_MAPS.find((m) => m.name === layout);
    if (!map) {
      throw new XferError(
        'UNKNOWN_NAME',
        `unknown safetensors layout '${layout}'. Known: ${known.join(', ')}.`,
        {
          name: layout,
          known,
        },
      );
    }
    return map;
  }
  const names = new Set(st.tensors.map((t) => t.name));
  const map = NAME_MAPS.find((m) => m.detect(names));
  if (!map) {
    const sample = st.tensors.slice(0, 5).map((t) => t.name);
    throw new XferError(
      'UNSUPPORTED',
      `${st.file}: its tensor names (${sample.join(', ')}...) are not in a layout xfer knows (${known.join(', ')}). Pass { layout } if the file is one of these under other names.`,
      { file: st.file, known, sample },
    );
  }
  return map;
}

/**
 * Groups the file's tensors by Keras layer, transposed to tfjs's layouts on read. A tensor the map
 * does not know is an error unless `skipUnknown`.
 */
export function storedLayersFromSafetensors(
  st: SafetensorsFile,
  map: NameMap,
  skipUnknown: boolean,
): StoredLayer[] {
  const layers = new Map<string, StoredWeight[]>();
  for (const entry of st.tensors) {
    const mapped = map.map(entry.name);
    if (mapped === null) continue;
    if (mapped === undefined) {
      if (skipUnknown) continue;
      throw new XferError(
        'WEIGHTS_MISMATCH',
        `the weights in ${st.file} do not fit the ${map.name} layout: tensor '${entry.name}' ${formatShape(entry.shape)} has no counterpart. Pass { skipMismatch: true } to ignore it.`,
        { source: st.file, tensor: entry.name, layout: map.name },
      );
    }
    const rank = TRANSFORM_RANK[mapped.transform];
    if (rank !== undefined && entry.shape.length !== rank) {
      throw new XferError(
        'WEIGHTS_MISMATCH',
        `the weights in ${st.file} do not fit the ${map.name} layout: tensor '${entry.name}' has shape ${formatShape(entry.shape)}, but a ${mapped.transform} weight has rank ${rank}.`,
        { source: st.file, tensor: entry.name },
      );
    }
    const s = entry.shape;
    const fixedShape =
      mapped.transform === 'dense'
        ? [s[1]!, s[0]!]
        : mapped.transform === 'depthwise'
          ? [s[2]!, s[3]!, s[0]!, 1]
          : mapped.transform === 'conv'
            ? [s[2]!, s[3]!, s[1]!, s[0]!]
            : [...s];
    const weight: StoredWeight = {
      name: `${mapped.layer}/${mapped.weight}`,
      shape: fixedShape,
      read: () =>
        transformTensor(st.read(entry) as Float32Array, entry.shape, mapped.transform).values,
    };
    const list = layers.get(mapped.layer);
    if (list) list.push(weight);
    else layers.set(mapped.layer, [weight]);
  }
  return [...layers].map(([name, weights]) => ({ name, weights }));
}

/**
 * Keras 3's `.keras` archive: a zip with `config.json`, `metadata.json` and `model.weights.h5`.
 * Only those three members are ever inflated, each bounded in size and compression ratio before
 * a byte is allocated for it; member names that are absolute or climb out (`..`) make the archive
 * refused. The config is read for layer names and class names only: nothing in it is deserialized
 * or run (no Lambda layers, no module or function names).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unzipSync } from 'fflate';
import { XferError } from '../errors.js';

/** Largest `.keras` file read, and largest weights member inflated. */
export const MAX_ARCHIVE_BYTES = 2 * 1024 ** 3;
/** Largest config.json / metadata.json inflated. */
export const MAX_JSON_BYTES = 64 * 1024 ** 2;
/** Inflated / compressed above this is refused as a zip bomb (weights barely compress). */
export const MAX_RATIO = 200;

/** More members than this is not a Keras archive (and bounds the walk of a forged directory). */
export const MAX_MEMBERS = 10_000;

const MEMBERS = ['config.json', 'metadata.json', 'model.weights.h5'] as const;

export interface KerasArchive {
  /** config.json, parsed as data. */
  readonly config: unknown;
  /** metadata.json (keras_version, date_saved), when present. */
  readonly metadata: Record<string, unknown>;
  /** model.weights.h5, extracted into a private temp folder; call `dispose()` to remove it. */
  readonly weightsFile: string;
  dispose(): Promise<void>;
}

function corrupt(file: string, what: string, details: Record<string, unknown> = {}): XferError {
  return new XferError('CORRUPT_FILE', `${file} is not a readable .keras archive: ${what}`, {
    file,
    ...details,
  });
}

/** PyTorch's `torch.save` files are pickles (in a zip since 1.6): loading one runs code. */
export function pickleRefusal(file: string): XferError {
  return new XferError(
    'UNSUPPORTED',
    `${file} is a PyTorch pickle file (torch.save: .pt, .pth, .bin); unpickling runs arbitrary code, so xfer never reads one. Convert it to safetensors in Python (safetensors.torch.save_file(model.state_dict(), 'model.safetensors')) and load that.${/\.bin$/i.test(file) ? ' (A tfjs weight shard is a .bin too: pass the model.json beside it instead.)' : ''}`,
    { file },
  );
}

function isUnsafeName(name: string): boolean {
  const parts = name.split(/[\\/]/);
  return (
    name.includes('\0') ||
    path.posix.isAbsolute(name) ||
    path.win32.isAbsolute(name) ||
    parts.includes('..')
  );
}

function parseJson(file: string, member: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw corrupt(file, `${member} is not valid JSON (${(error as Error).message}).`);
  }
}

/**
 * Reads a `.keras` archive: checks every member's name and declared sizes, inflates the three
 * members Keras writes, and extracts the weights for h5wasm (which opens real paths).
 */
export async function readKerasArchive(file: string): Promise<KerasArchive> {
  const { size } = await fsp.stat(file);
  if (size > MAX_ARCHIVE_BYTES) {
    throw new XferError(
      'UNSUPPORTED',
      `${file} is ${size} bytes; xfer reads .keras archives up to ${MAX_ARCHIVE_BYTES} bytes.`,
      { file, size },
    );
  }
  const data = await fsp.readFile(file);
  let members: Record<string, Uint8Array>;
  const names: string[] = [];
  try {
    members = unzipSync(data, {
      filter: (entry) => {
        if (names.length >= MAX_MEMBERS) {
          throw corrupt(file, `it lists more than ${MAX_MEMBERS} members.`);
        }
        names.push(entry.name);
        if (isUnsafeName(entry.name)) {
          throw corrupt(file, `it holds the member '${entry.name}', a path outside the archive.`, {
            member: entry.name,
          });
        }
        if (!(MEMBERS as readonly string[]).includes(entry.name)) return false;
        const limit = entry.name.endsWith('.json') ? MAX_JSON_BYTES : MAX_ARCHIVE_BYTES;
        if (entry.originalSize > limit) {
          throw corrupt(
            file,
            `'${entry.name}' inflates to ${entry.originalSize} bytes, over the ${limit}-byte limit.`,
            {
              member: entry.name,
            },
          );
        }
        if (
          entry.originalSize > 1024 * 1024 &&
          entry.originalSize > MAX_RATIO * Math.max(1, entry.size)
        ) {
          throw corrupt(
            file,
            `'${entry.name}' claims to inflate ${entry.size} bytes to ${entry.originalSize}, a ratio over ${MAX_RATIO} (a zip bomb?).`,
            { member: entry.name },
          );
        }
        if (entry.compression !== 0 && entry.compression !== 8) {
          throw new XferError(
            'UNSUPPORTED',
            `${file}: '${entry.name}' uses zip compression method ${entry.compression}; Keras writes stored or deflated members.`,
            { file, member: entry.name },
          );
        }
        return true;
      },
    });
  } catch (error) {
    if (error instanceof XferError) throw error;
    throw corrupt(file, `the zip could not be read (${(error as Error).message}).`);
  }
  if (!members['config.json'] && names.some((n) => /(^|\/)data\.pkl$/.test(n))) {
    throw pickleRefusal(file);
  }
  for (const member of ['config.json', 'model.weights.h5']) {
    if (!members[member]) {
      throw corrupt(
        file,
        `it has no '${member}' (Keras's model.save('x.keras') writes config.json and model.weights.h5).`,
        {
          member,
        },
      );
    }
  }
  const config = parseJson(file, 'config.json', members['config.json']!);
  const metadataRaw = members['metadata.json']
    ? parseJson(file, 'metadata.json', members['metadata.json'])
    : {};
  const metadata =
    metadataRaw !== null && typeof metadataRaw === 'object' && !Array.isArray(metadataRaw)
      ? (metadataRaw as Record<string, unknown>)
      : {};
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-keras-'));
  const weightsFile = path.join(dir, 'model.weights.h5');
  try {
    await fsp.writeFile(weightsFile, members['model.weights.h5']!);
  } catch (error) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    config,
    metadata,
    weightsFile,
    dispose: () => fsp.rm(dir, { recursive: true, force: true }),
  };
}

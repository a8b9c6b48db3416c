/**
 * `cats_and_dogs_small`, the seed's data set (Chollet, "Deep Learning with Python", ch. 5), built
 * from Microsoft's Kaggle cats-and-dogs archive, the one TensorFlow Datasets' `cats_vs_dogs` uses
 * (`kagglecatsanddogs_5340.zip`, 824,887,076 bytes). Per class, in file-number order, the first
 * 1,000 readable images are train, the next 500 validation, the next 500 test (the book's cats
 * 0-999 / 1000-1499 / 1500-1999), written as `train/cats/cat.0.jpg` etc.
 *
 * Images that are not JFIF JPEGs are dropped as TFDS drops them ("JFIF" must be in the first 10
 * bytes; 1,738 such files in the archive, e.g. the empty Cat/666.jpg): a dropped number is
 * replaced by the next readable one, so every split stays full.
 *
 * Resuming: the archive is cached by `getFile` and checked by size and sha256; a download cut
 * off midway is continued by the next run with an HTTP Range request (getFile keeps the part and
 * the server's ETag / Last-Modified), and images already written are kept, so an interrupted
 * build continues where it stopped.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { describeValue, invalidParameterError, XferError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { info } from '../../util/log.js';
import { createProgress } from '../../util/progress.js';
import { checkBoolean } from '../../util/validate.js';
import { cacheDir } from '../../weights/cache.js';
import { getFile } from '../../weights/download.js';
import { type ZipEntry, ZipReader } from './zip.js';

/** Microsoft's archive, as TFDS's `cats_vs_dogs.py` downloads it. */
export const CATS_VS_DOGS_ARCHIVE = {
  url: 'https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip',
  fileName: 'kagglecatsanddogs_5340.zip',
  size: 824_887_076,
  sha256: 'b7974bd00a84a99921f36ee4403f089853777b5ae8d151c76a86e64900334af9',
} as const;

const NAME_RE = /^PetImages[\\/](Cat|Dog)[\\/](\d+)\.jpg$/;
const SPLITS = ['train', 'validation', 'test'] as const;
type Split = (typeof SPLITS)[number];

export interface FetchCatsVsDogsOptions {
  /** Where to build the data set. Default `<cache>/datasets/cats_and_dogs_small`. */
  dir?: string;
  /** Images per class in each split. Default { train: 1000, validation: 500, test: 500 } (the book's). */
  perClass?: Partial<Record<Split, number>>;
  /** Archive URL. Default Microsoft's (TFDS's). */
  url?: string;
  /** Expected sha256 of the archive; null skips the check. Default Microsoft's archive's. */
  sha256?: string | null;
  /** Expected size of the archive in bytes; null skips the check. Default Microsoft's archive's. */
  size?: number | null;
  /** Cache root for the archive. Default `$XFER_HOME` or `~/.cache/xfer`. */
  cacheDir?: string;
  /** Progress bars for the download and the extraction. Default true. */
  progress?: boolean;
}

export interface CatsVsDogsResult {
  /** The data set folder, with train/, validation/ and test/, each with cats/ and dogs/. */
  dir: string;
  /** Images per class in each split. */
  perClass: Record<Split, number>;
  /** Archive members passed over because they are not JFIF JPEGs, e.g. 'PetImages/Cat/666.jpg'. */
  dropped: string[];
  /** Images written by this call (0 when the data set was already complete). */
  written: number;
}

const MARKER = '.xfer-dataset.json';

function checkCount(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidParameterError(`perClass.${name}`, 'non-negative integer', value);
  }
  return value;
}

/** TFDS's test: `b"JFIF" in fobj.peek(10)`. */
function isJfif(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 10)).includes('JFIF', 0, 'latin1');
}

/**
 * Downloads (or reuses) the archive and builds `cats_and_dogs_small` from it.
 * @example
 * const { dir } = await fetchCatsVsDogs();
 * const train = await new ImageDataGenerator({ rescale: 1 / 255 }).flowFromDirectory(`${dir}/train`, { classMode: 'binary' });
 */
export async function fetchCatsVsDogs(
  options: FetchCatsVsDogsOptions = {},
): Promise<CatsVsDogsResult> {
  if (options === null || typeof options !== 'object') {
    throw invalidParameterError('options', 'an options object', options);
  }
  const perClass: Record<Split, number> = {
    train: checkCount('train', options.perClass?.train ?? 1000),
    validation: checkCount('validation', options.perClass?.validation ?? 500),
    test: checkCount('test', options.perClass?.test ?? 500),
  };
  const progress = checkBoolean('progress', options.progress ?? true);
  const root = options.cacheDir !== undefined ? path.resolve(options.cacheDir) : cacheDir();
  const dir = path.resolve(options.dir ?? path.join(root, 'datasets', 'cats_and_dogs_small'));
  const markerFile = path.join(dir, MARKER);
  const marker = await fsp.readFile(markerFile, 'utf8').catch(() => null);
  if (marker !== null) {
    const previous = JSON.parse(marker) as { perClass: Record<Split, number>; dropped: string[] };
    if (SPLITS.every((s) => previous.perClass[s] === perClass[s])) {
      info(`cats_and_dogs_small is already complete in ${dir}.`);
      return { dir, perClass, dropped: previous.dropped, written: 0 };
    }
  }

  const sha256 = options.sha256 === undefined ? CATS_VS_DOGS_ARCHIVE.sha256 : options.sha256;
  const archive = await getFile(
    CATS_VS_DOGS_ARCHIVE.fileName,
    options.url ?? CATS_VS_DOGS_ARCHIVE.url,
    {
      cacheSubdir: 'datasets',
      cacheDir: root,
      progress,
      ...(sha256 ? { fileHash: sha256, hashAlgorithm: 'sha256' as const } : {}),
    },
  );
  const expectedSize = options.size === undefined ? CATS_VS_DOGS_ARCHIVE.size : options.size;
  const actualSize = (await fsp.stat(archive)).size;
  if (expectedSize !== null && actualSize !== expectedSize) {
    throw new XferError(
      'HASH_MISMATCH',
      `the archive ${archive} has ${actualSize} bytes, not ${expectedSize}: it is incomplete or another file. Delete it and run again.`,
      { path: archive, expected: expectedSize, received: actualSize },
    );
  }

  let zip: ZipReader;
  try {
    zip = await ZipReader.open(archive);
  } catch (error) {
    throw new XferError(
      'CORRUPT_FILE',
      `cannot read the archive ${archive}: ${(error as Error).message}. Delete it and run again.`,
      { path: archive },
      { cause: error },
    );
  }
  const dropped: string[] = [];
  let written = 0;
  try {
    const byClass = new Map<string, { id: number; entry: ZipEntry }[]>([
      ['Cat', []],
      ['Dog', []],
    ]);
    for (const entry of zip.entries) {
      const match = NAME_RE.exec(entry.name);
      if (match) byClass.get(match[1]!)!.push({ id: Number(match[2]), entry });
    }
    const needed = perClass.train + perClass.validation + perClass.test;
    const bar = progress
      ? createProgress({
          total: 2 * needed,
          label: 'Extracting cats_and_dogs_small',
          unit: 'images',
        })
      : null;
    let done = 0;
    for (const [archiveClass, members] of byClass) {
      members.sort((a, b) => a.id - b.id);
      const folder = archiveClass === 'Cat' ? 'cats' : 'dogs';
      const prefix = archiveClass === 'Cat' ? 'cat' : 'dog';
      const targets = SPLITS.flatMap((split) => Array<Split>(perClass[split]).fill(split));
      let next = 0;
      for (const { id, entry } of members) {
        if (next === targets.length) break;
        const file = path.join(dir, targets[next]!, folder, `${prefix}.${id}.jpg`);
        const existing = await fsp.stat(file).catch(() => null);
        if (existing?.size === entry.size && existing.size > 0) {
          next++;
          bar?.update(++done);
          continue;
        }
        let bytes: Buffer;
        try {
          bytes = await zip.read(entry);
        } catch (error) {
          throw new XferError(
            'CORRUPT_FILE',
            `cannot extract ${entry.name} from ${archive}: ${(error as Error).message}. Delete the archive and run again.`,
            { path: archive, member: entry.name },
            { cause: error },
          );
        }
        if (!isJfif(bytes)) {
          dropped.push(entry.name);
          continue;
        }
        await fsp.mkdir(path.dirname(file), { recursive: true });
        await writeFileAtomic(file, bytes);
        written++;
        next++;
        bar?.update(++done);
      }
      if (next < targets.length) {
        bar?.stop();
        throw new XferError(
          'NO_DATA',
          `the archive ${describeValue(archive)} has only ${next} readable ${folder} images; ${targets.length} are needed (perClass ${JSON.stringify(perClass)}).`,
          { path: archive, class: folder, found: next, needed: targets.length },
        );
      }
    }
    bar?.stop();
  } finally {
    await zip.close();
  }
  await writeFileAtomic(markerFile, `${JSON.stringify({ perClass, dropped }, null, 2)}\n`);
  info(
    `cats_and_dogs_small is ready in ${dir}: ${perClass.train}/${perClass.validation}/${perClass.test} images per class (train/validation/test); ${dropped.length} non-JFIF file(s) passed over.`,
  );
  return { dir, perClass, dropped, written };
}

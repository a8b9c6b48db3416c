/**
 * `xfer datasets fetch <name>`: builds a data set folder from its public archive;
 * `xfer datasets list`: the data sets it knows, and whether they are built in the cache.
 */
import * as path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { CATS_VS_DOGS_ARCHIVE, fetchCatsVsDogs } from '../../data/datasets/index.js';
import { unknownNameError } from '../../errors.js';
import { pathExists } from '../../util/fs.js';
import { cacheDir } from '../../weights/cache.js';
import { printJson } from '../output.js';
import { nonNegativeInteger } from '../parse.js';

const DATASETS = ['cats-vs-dogs'];

/** What `xfer datasets list` says about each data set. */
const DATASET_INFO: Record<string, { description: string; folder: string; archiveBytes: number }> =
  {
    'cats-vs-dogs': {
      description:
        "the seed's cats_and_dogs_small: train/validation/test x cats/dogs, 1000/500/500 per class",
      folder: 'cats_and_dogs_small',
      archiveBytes: CATS_VS_DOGS_ARCHIVE.size,
    },
  };

/** '1000,500,500' → { train, validation, test } */
function perClass(text: string): { train: number; validation: number; test: number } {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length !== 3) {
    throw new InvalidArgumentError(
      `expected train,validation,test counts such as 1000,500,500, got '${text}'.`,
    );
  }
  const [train, validation, test] = parts.map(nonNegativeInteger) as [number, number, number];
  return { train, validation, test };
}

export function registerDatasets(program: Command): void {
  const datasets = program.command('datasets').description('download and build data sets');
  datasets
    .command('list')
    .description('the data sets `xfer datasets fetch` builds, with their default folders')
    .option('--json', 'one JSON line per data set: name, description, dir, built, archiveBytes')
    .action(async (opts: { json?: boolean }) => {
      for (const name of DATASETS) {
        const about = DATASET_INFO[name]!;
        const dir = path.join(cacheDir(), 'datasets', about.folder);
        // fetch writes its marker file last: a folder without it is an interrupted build.
        const built = await pathExists(path.join(dir, '.xfer-dataset.json'));
        if (opts.json) {
          printJson({
            name,
            description: about.description,
            dir,
            built,
            archiveBytes: about.archiveBytes,
          });
        } else {
          process.stdout.write(
            `${name}  ${about.description}\n  ${dir}${built ? '' : ' (not built)'}\n`,
          );
        }
      }
    });
  datasets
    .command('fetch')
    .description(
      "build a data set folder: cats-vs-dogs is the seed's cats_and_dogs_small (train/validation/test x cats/dogs, 1000/500/500 per class) from Microsoft's archive (787 MB, cached, sha256-checked)",
    )
    .argument('<name>', `data set: ${DATASETS.join(', ')}`)
    .option('--dir <dir>', 'where to build it (default: <cache>/datasets/cats_and_dogs_small)')
    .option('--per-class <counts>', 'images per class as train,validation,test', perClass)
    .option('--url <url>', "archive URL (default: Microsoft's, as TensorFlow Datasets uses)")
    .option('--sha256 <hex>', 'expected sha256 of the archive (default: the known one)')
    .option('--size <bytes>', 'expected size of the archive in bytes', nonNegativeInteger)
    .option('--json', 'print one JSON line with the result')
    .action(
      async (
        name: string,
        opts: {
          dir?: string;
          perClass?: { train: number; validation: number; test: number };
          url?: string;
          sha256?: string;
          size?: number;
          json?: boolean;
        },
      ) => {
        if (!DATASETS.includes(name)) throw unknownNameError('data set', name, DATASETS);
        const result = await fetchCatsVsDogs({
          ...(opts.dir ? { dir: opts.dir } : {}),
          ...(opts.perClass ? { perClass: opts.perClass } : {}),
          ...(opts.url
            ? { url: opts.url, sha256: opts.sha256 ?? null, size: opts.size ?? null }
            : {}),
          ...(opts.sha256 ? { sha256: opts.sha256 } : {}),
          ...(opts.size !== undefined ? { size: opts.size } : {}),
          progress: !program.opts().quiet,
        });
        if (opts.json) {
          printJson({
            dir: result.dir,
            perClass: result.perClass,
            dropped: result.dropped.length,
            written: result.written,
          });
        } else {
          process.stdout.write(`${result.dir}\n`);
        }
      },
    );
}

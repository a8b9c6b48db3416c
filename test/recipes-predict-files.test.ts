/** Expanding `xfer predict` arguments: files, folders, and `*` / `?` / `[...]` / `**` patterns. */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { expandImageArgs } from '../src/recipes/run-folder-predict.js';
import { makeTempDir } from './helpers/image-folders.js';

let root: string;
before(async () => {
  root = await makeTempDir('predict-files');
  for (const file of [
    'a/x.png',
    'a/y.jpg',
    'a/.hidden.png',
    'a/notes.txt',
    'a/b/z.PNG',
    'a/b/c/w.webp',
    'a/.git/q.png',
  ]) {
    await fsp.mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await fsp.writeFile(path.join(root, file), '');
  }
});
after(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const r = (...files: string[]) => files.map((f) => path.join(root, f));

test('a folder expands to its images, recursively and sorted, without hidden files', async () => {
  assert.deepEqual(
    await expandImageArgs([path.join(root, 'a')]),
    r('a/b/c/w.webp', 'a/b/z.PNG', 'a/x.png', 'a/y.jpg'),
  );
});

test('patterns match per path segment; ** spans folders; a wildcard skips dot files', async () => {
  assert.deepEqual(await expandImageArgs([`${root}/a/*.png`]), r('a/x.png'));
  assert.deepEqual(await expandImageArgs([`${root}/a/?.*`]), r('a/x.png', 'a/y.jpg'));
  assert.deepEqual(await expandImageArgs([`${root}/a/[!x].*`]), r('a/y.jpg'));
  assert.deepEqual(
    await expandImageArgs([`${root}/**/*.{png}`]),
    [`${root}/**/*.{png}`],
    'no brace expansion: kept as given',
  );
  assert.deepEqual(
    await expandImageArgs([`${root}/a/**/*`]),
    r('a/b/c/w.webp', 'a/b/z.PNG', 'a/x.png', 'a/y.jpg'),
  );
  assert.deepEqual(await expandImageArgs([`${root}/a/**/z.*`]), r('a/b/z.PNG'));
  assert.deepEqual(await expandImageArgs([`${root}/*/b/*`]), r('a/b/z.PNG'));
});

test('files are kept as given, in order; what matches nothing is kept to be reported', async () => {
  const missing = path.join(root, 'nope.png');
  assert.deepEqual(
    await expandImageArgs([
      path.join(root, 'a/y.jpg'),
      missing,
      `${root}/a/*.gif`,
      path.join(root, 'a/notes.txt'),
    ]),
    [path.join(root, 'a/y.jpg'), missing, `${root}/a/*.gif`, path.join(root, 'a/notes.txt')],
  );
});

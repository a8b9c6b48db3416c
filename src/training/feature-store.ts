/**
 * Where the feature cache keeps its rows: in memory up to a byte bound, then on disk, either in a
 * temp folder removed at exit (spill) or in a directory that outlives the run (`cacheDir`).
 *
 * One store serves one frozen-prefix version (`identity`, a hash of the exported prefix): its
 * files live in a folder named after it and each file repeats it in its header, so rows computed
 * with other weights are never served. A file is trusted only whole: magic, version, key, length
 * and a SHA-256 of the content must all match; anything else (truncated, corrupt, foreign) is
 * deleted and the row recomputed. The directory's total size is bounded: the oldest files go first,
 * whatever version they belong to.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tempPathFor } from '../util/fs.js';

/** Default memory bound of a feature store: 1 GiB (GAP features of VGG16 for 500k images). */
export const DEFAULT_FEATURE_MEMORY_BYTES = 1024 ** 3;
/** Default bound of a feature store's directory: 8 GiB. */
export const DEFAULT_FEATURE_DISK_BYTES = 8 * 1024 ** 3;

export interface FeatureStoreOptions {
  /** Bytes of features kept in memory; rows past it go to disk. Default 1 GiB. */
  maxMemoryBytes?: number;
  /**
   * A directory that keeps the features across runs (created if needed; every row is written
   * there too). Default none: rows past the memory bound spill to a temp folder removed at exit.
   */
  directory?: string;
  /** Bound of the directory's (or the spill folder's) total size; oldest files go first. Default 8 GiB. */
  maxDiskBytes?: number;
}

const MAGIC = 0x31434658; // 'XFC1' little-endian
const HEADER = 72; // magic, float count, sha256(identity), sha256(key)
const TRAILER = 32; // sha256 of header and data
const EXTENSION = '.xfc';

function sha256(data: string | Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** The file name of a key: its SHA-256, so any string (paths, NULs) makes a safe name. */
function fileName(key: string): string {
  return `${sha256(key).toString('base64url')}${EXTENSION}`;
}

function encode(identityHash: Buffer, key: string, row: Float32Array): Buffer {
  const buffer = Buffer.alloc(HEADER + row.byteLength + TRAILER);
  buffer.writeUInt32LE(MAGIC, 0);
  buffer.writeUInt32LE(row.length, 4);
  identityHash.copy(buffer, 8);
  sha256(key).copy(buffer, 40);
  Buffer.from(row.buffer, row.byteOffset, row.byteLength).copy(buffer, HEADER);
  sha256(buffer.subarray(0, HEADER + row.byteLength)).copy(buffer, HEADER + row.byteLength);
  return buffer;
}

/** The row in `buffer` when it is a whole, intact file of this identity and key; else undefined. */
function decode(buffer: Buffer, identityHash: Buffer, key: string): Float32Array | undefined {
  if (buffer.length < HEADER + TRAILER || buffer.readUInt32LE(0) !== MAGIC) return undefined;
  const count = buffer.readUInt32LE(4);
  const end = HEADER + count * 4;
  if (buffer.length !== end + TRAILER) return undefined;
  if (!buffer.subarray(8, 40).equals(identityHash)) return undefined;
  if (!buffer.subarray(40, HEADER).equals(sha256(key))) return undefined;
  if (!sha256(buffer.subarray(0, end)).equals(buffer.subarray(end))) return undefined;
  // A copy: the read buffer may sit at an offset that a Float32Array view cannot use.
  const row = new Float32Array(count);
  Buffer.from(row.buffer).set(buffer.subarray(HEADER, end));
  return row;
}

const spillFolders = new Set<string>();
let exitHookInstalled = false;

function makeSpillFolder(): string {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'xfer-features-'));
  spillFolders.add(folder);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const dir of spillFolders) rmSync(dir, { recursive: true, force: true });
    });
  }
  return folder;
}

interface DiskFile {
  file: string;
  size: number;
  /** The key's file name when the file belongs to this store's identity. */
  name?: string;
}

/** The files of a directory tier, oldest first, with their total size. */
class DiskTier {
  /** Files of this identity present, by name. */
  readonly index = new Map<string, DiskFile>();
  private readonly writing = new Set<string>();
  private queue: DiskFile[] = [];
  private head = 0;
  private total = 0;

  constructor(
    readonly root: string,
    private readonly folder: string,
    private readonly identityHash: Buffer,
    private readonly maxBytes: number,
    readonly spill: boolean,
  ) {}

  /** Lists what the directory holds (all versions), so the bound covers earlier runs too. */
  static async open(
    root: string,
    identity: string,
    identityHash: Buffer,
    maxBytes: number,
    spill: boolean,
  ): Promise<DiskTier> {
    const folder = path.join(root, identity.slice(0, 32));
    await fsp.mkdir(folder, { recursive: true });
    const tier = new DiskTier(root, folder, identityHash, maxBytes, spill);
    if (spill) return tier;
    const found: (DiskFile & { mtime: number })[] = [];
    for (const version of await fsp.readdir(root, { withFileTypes: true })) {
      if (!version.isDirectory()) continue;
      const dir = path.join(root, version.name);
      const names = await fsp.readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const file = path.join(dir, name);
        if (name.endsWith('.tmp')) {
          // A write cut short by a crash; one younger than an hour may be another run's, live.
          const stat = await fsp.stat(file).catch(() => undefined);
          if (stat && Date.now() - stat.mtimeMs > 3600_000) await fsp.rm(file, { force: true });
          continue;
        }
        if (!name.endsWith(EXTENSION)) continue;
        const stat = await fsp.stat(file).catch(() => undefined);
        if (!stat?.isFile()) continue;
        found.push({
          file,
          size: stat.size,
          mtime: stat.mtimeMs,
          ...(dir === folder ? { name } : {}),
        });
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const entry of found) {
      tier.total += entry.size;
      tier.add({ file: entry.file, size: entry.size, name: entry.name });
    }
    await tier.evict(0);
    return tier;
  }

  /** Records a file whose bytes `total` already counts. */
  private add(entry: DiskFile): void {
    this.queue.push(entry);
    if (entry.name !== undefined) this.index.set(entry.name, entry);
  }

  /**
   * Deletes the oldest files until `incoming` more bytes fit under the bound, and reserves them.
   * The bookkeeping is synchronous, so concurrent writes never overshoot the bound together.
   */
  private async evict(incoming: number): Promise<void> {
    const doomed: string[] = [];
    while (this.total + incoming > this.maxBytes && this.head < this.queue.length) {
      const oldest = this.queue[this.head++]!;
      this.total -= oldest.size;
      if (oldest.name !== undefined && this.index.get(oldest.name) === oldest) {
        this.index.delete(oldest.name);
      }
      if (oldest.size > 0) doomed.push(oldest.file);
    }
    this.total += incoming;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    await Promise.all(doomed.map((file) => fsp.rm(file, { force: true })));
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  async get(name: string, key: string): Promise<Float32Array | undefined> {
    const file = path.join(this.folder, name);
    const buffer = await fsp.readFile(file).catch(() => undefined);
    const row = buffer && decode(buffer, this.identityHash, key);
    if (!row) {
      // Truncated, corrupt, foreign or gone: never trusted; the caller recomputes the row.
      const entry = this.index.get(name);
      if (entry) {
        this.total -= entry.size;
        entry.size = 0; // its queue slot stays, empty
        this.index.delete(name);
      }
      await fsp.rm(file, { force: true });
    }
    return row;
  }

  /**
   * Writes a row atomically: a temp file beside it, then a rename, so a reader (another run on the
   * same directory) sees a whole file or none. No fsync: a cache needs no durability, and a file
   * torn by a crash fails its checksum and is recomputed.
   */
  async put(name: string, key: string, row: Float32Array): Promise<void> {
    if (this.index.has(name) || this.writing.has(name)) return;
    const data = encode(this.identityHash, key, row);
    if (data.length > this.maxBytes) return;
    this.writing.add(name);
    const file = path.join(this.folder, name);
    const temp = tempPathFor(file);
    try {
      await this.evict(data.length);
      await fsp.writeFile(temp, data);
      await fsp.rename(temp, file);
      this.add({ file, size: data.length, name });
    } catch (error) {
      this.total -= data.length;
      await fsp.rm(temp, { force: true });
      // A full or read-only disk costs recomputation, not the training run.
      if ((error as NodeJS.ErrnoException).code === undefined) throw error;
    } finally {
      this.writing.delete(name);
    }
  }

  get bytes(): number {
    return this.total;
  }

  remove(): void {
    if (!this.spill) return;
    spillFolders.delete(this.root);
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Feature rows by key for one frozen-prefix version; see the file comment. */
export class FeatureStore {
  private readonly memory = new Map<string, Float32Array>();
  private memoryBytes = 0;
  private maxMemoryBytes = DEFAULT_FEATURE_MEMORY_BYTES;
  private maxDiskBytes = DEFAULT_FEATURE_DISK_BYTES;
  private directory: string | undefined;
  private disk: DiskTier | undefined;
  /** The spill folder being made by the first row past the memory bound. */
  private spilling: Promise<DiskTier> | undefined;
  private readonly identityHash: Buffer;

  /** `identity` names the frozen prefix (e.g. a hash of its exported bytes). */
  constructor(readonly identity: string) {
    this.identityHash = sha256(identity);
  }

  /** Applies new bounds or a new directory; rows in memory stay, a previous spill folder goes. */
  async configure(options: FeatureStoreOptions = {}): Promise<void> {
    this.maxMemoryBytes = options.maxMemoryBytes ?? DEFAULT_FEATURE_MEMORY_BYTES;
    const maxDisk = options.maxDiskBytes ?? DEFAULT_FEATURE_DISK_BYTES;
    const directory = options.directory === undefined ? undefined : path.resolve(options.directory);
    if (directory === this.directory && maxDisk === this.maxDiskBytes) return;
    this.maxDiskBytes = maxDisk;
    this.directory = directory;
    this.disk?.remove();
    this.disk = directory
      ? await DiskTier.open(directory, this.identity, this.identityHash, maxDisk, false)
      : undefined;
  }

  /** Rows held, in memory and on disk. */
  get size(): number {
    let onDiskOnly = 0;
    if (this.disk)
      for (const name of this.disk.index.keys()) if (!this.memory.has(name)) onDiskOnly++;
    return this.memory.size + onDiskOnly;
  }

  /** Bytes of rows in memory. */
  get bytesInMemory(): number {
    return this.memoryBytes;
  }

  /** Bytes of files in the disk tier (the directory's total, all versions), 0 without one. */
  get bytesOnDisk(): number {
    return this.disk?.bytes ?? 0;
  }

  /** The folder rows go to past the memory bound: the directory, a spill folder, or none yet. */
  get diskRoot(): string | undefined {
    return this.disk?.root;
  }

  has(key: string): boolean {
    const name = fileName(key);
    return this.memory.has(name) || (this.disk?.has(name) ?? false);
  }

  /** The row of `key`, or undefined when absent or its file is not intact. */
  async get(key: string): Promise<Float32Array | undefined> {
    const name = fileName(key);
    const row = this.memory.get(name);
    if (row) return row;
    if (!this.disk?.has(name)) return undefined;
    return this.disk.get(name, key);
  }

  /** Keeps a row: in memory while under the bound, and on disk (always, with a directory). */
  async put(key: string, row: Float32Array): Promise<void> {
    const name = fileName(key);
    if (this.memory.has(name)) return;
    const fits = this.memoryBytes + row.byteLength <= this.maxMemoryBytes;
    if (fits) {
      this.memory.set(name, row);
      this.memoryBytes += row.byteLength;
      if (!this.directory) return;
    }
    if (!this.disk) {
      this.spilling ??= DiskTier.open(
        makeSpillFolder(),
        this.identity,
        this.identityHash,
        this.maxDiskBytes,
        true,
      );
      const spill = await this.spilling;
      this.spilling = undefined;
      this.disk ??= spill;
      if (this.disk !== spill) spill.remove();
    }
    await this.disk.put(name, key, row);
  }

  /** Drops the memory rows and removes a spill folder now (a directory stays). */
  dispose(): void {
    this.memory.clear();
    this.memoryBytes = 0;
    this.disk?.remove();
    this.disk = undefined;
    this.directory = undefined;
  }
}

/**
 * Random access to the members of a zip archive: the central directory is read from the end of
 * the file, then only the wanted members are read and inflated (node's zlib, raw deflate). Picking
 * 4,000 images out of a 787 MB archive reads a few dozen MB instead of the whole file. No zip64
 * (archives and members under 4 GiB, fewer than 65,535 members), which covers the data sets here.
 */
import { promises as fsp } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

async function readAt(handle: fsp.FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  if (bytesRead !== length)
    throw new Error(`unexpected end of archive at byte ${position + bytesRead}`);
  return buffer;
}

export class ZipReader {
  private constructor(
    private readonly handle: fsp.FileHandle,
    readonly entries: ZipEntry[],
  ) {}

  /** Opens `file` and reads its central directory; throws a plain Error for a damaged archive. */
  static async open(file: string): Promise<ZipReader> {
    const handle = await fsp.open(file, 'r');
    try {
      const size = (await handle.stat()).size;
      // The end record is 22 bytes plus a comment of up to 65,535.
      const tailLength = Math.min(size, 22 + 0xffff);
      const tail = await readAt(handle, size - tailLength, tailLength);
      let eocd = -1;
      for (let i = tail.length - 22; i >= 0; i--) {
        if (tail.readUInt32LE(i) === EOCD_SIGNATURE) {
          eocd = i;
          break;
        }
      }
      if (eocd < 0) throw new Error('not a zip archive (no end of central directory record)');
      const count = tail.readUInt16LE(eocd + 10);
      const directorySize = tail.readUInt32LE(eocd + 12);
      const directoryOffset = tail.readUInt32LE(eocd + 16);
      if (directoryOffset === 0xffffffff || count === 0xffff) {
        throw new Error('zip64 archives are not supported');
      }
      const directory = await readAt(handle, directoryOffset, directorySize);
      const entries: ZipEntry[] = [];
      let p = 0;
      for (let i = 0; i < count; i++) {
        if (directory.readUInt32LE(p) !== CENTRAL_SIGNATURE) {
          throw new Error(`damaged central directory at entry ${i}`);
        }
        const flags = directory.readUInt16LE(p + 8);
        const nameLength = directory.readUInt16LE(p + 28);
        const extraLength = directory.readUInt16LE(p + 30);
        const commentLength = directory.readUInt16LE(p + 32);
        const nameBytes = directory.subarray(p + 46, p + 46 + nameLength);
        entries.push({
          // Bit 11: UTF-8 names; otherwise CP437, of which ASCII (all names here) is a subset.
          name: nameBytes.toString(flags & 0x800 ? 'utf8' : 'latin1'),
          method: directory.readUInt16LE(p + 10),
          crc32: directory.readUInt32LE(p + 16),
          compressedSize: directory.readUInt32LE(p + 20),
          size: directory.readUInt32LE(p + 24),
          localHeaderOffset: directory.readUInt32LE(p + 42),
        });
        p += 46 + nameLength + extraLength + commentLength;
      }
      return new ZipReader(handle, entries);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The uncompressed bytes of `entry`. */
  async read(entry: ZipEntry): Promise<Buffer> {
    const header = await readAt(this.handle, entry.localHeaderOffset, 30);
    if (header.readUInt32LE(0) !== LOCAL_SIGNATURE) {
      throw new Error(`damaged local header for ${entry.name}`);
    }
    const dataOffset =
      entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
    const compressed = await readAt(this.handle, dataOffset, entry.compressedSize);
    let data: Buffer;
    if (entry.method === 0) data = compressed;
    else if (entry.method === 8) data = inflateRawSync(compressed);
    else
      throw new Error(
        `${entry.name} uses compression method ${entry.method}, not stored or deflate`,
      );
    if (data.length !== entry.size) {
      throw new Error(`${entry.name} inflated to ${data.length} bytes, expected ${entry.size}`);
    }
    return data;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/**
 * JPEG decoding inside the calling thread, with libjpeg-turbo compiled to WebAssembly (the
 * @cornerstonejs/codec-libjpeg-turbo-8bit build), for the image pool's worker threads.
 * libjpeg-turbo is what PIL decodes with and what sharp's mozjpeg is a fork of, with the same
 * integer IDCT and upsampling, so the pixels are the same (tested against sharp and Pillow); what
 * changes is the cost. sharp hands every image from libuv's thread pool to libvips's and back and
 * copies it into fresh memory twice, which on 2 cores costs more than the decoding itself; here a
 * worker decodes in place, into memory it reuses, and its batches come ~10-20% faster
 * (bench/data-pipeline.ts).
 *
 * Only plain files take this path, recognised from their header: 8-bit baseline or progressive,
 * grey or three components, no EXIF orientation to apply, ending with the end-of-image marker (a
 * truncated file goes to sharp, which refuses it as before), within the pixel limit. An embedded
 * ICC profile is ignored on both paths, as PIL ignores it. Everything else, and any failure here,
 * is sharp's.
 */
import { createRequire } from 'node:module';
import type { RawImage } from './decoders.js';

/** The part of the codec's embind `JPEGDecoder` used here. */
interface Codec {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; componentCount: number };
  getDecodedBuffer(): Uint8Array;
}

/** What the header says of a plain JPEG; null for a file to leave to sharp. */
export interface JpegHeader {
  width: number;
  height: number;
  components: 1 | 3;
}

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;

/** The EXIF orientation in an APP1 payload (from its "Exif\0\0"), 1 when absent; null if unreadable. */
function exifOrientation(b: Uint8Array, start: number, end: number): number | null {
  const tiff = start + 6;
  if (tiff + 8 > end) return null;
  const little = b[tiff] === 0x49 && b[tiff + 1] === 0x49; // "II"
  if (!little && !(b[tiff] === 0x4d && b[tiff + 1] === 0x4d)) return null;
  const read16 = (at: number) => (little ? b[at]! | (b[at + 1]! << 8) : u16(b, at));
  const read32 = (at: number) =>
    little
      ? (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0
      : ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  const ifd = tiff + read32(tiff + 4);
  if (ifd + 2 > end) return null;
  const entries = read16(ifd);
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > end) return null;
    if (read16(entry) === 0x0112) return read16(entry + 8); // Orientation, a SHORT
  }
  return 1;
}

function startsWith(b: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * The size and components of `bytes` when it is a plain JPEG this module decodes (see the top of
 * the file), from its marker segments up to the first scan; null otherwise.
 */
export function plainJpegHeader(bytes: Uint8Array): JpegHeader | null {
  const n = bytes.length;
  if (n < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  if (bytes[n - 2] !== 0xff || bytes[n - 1] !== 0xd9) return null;
  let header: JpegHeader | null = null;
  let pos = 2;
  while (pos + 4 <= n) {
    if (bytes[pos] !== 0xff) return null;
    const marker = bytes[pos + 1]!;
    if (marker === 0xff) {
      pos++; // a fill byte before the marker
      continue;
    }
    if (marker === 0xda) return header; // the first scan: the header is complete
    const length = u16(bytes, pos + 2);
    const start = pos + 4;
    const end = pos + 2 + length;
    if (length < 2 || end > n) return null;
    if (marker === 0xe1 && startsWith(bytes, start, 'Exif\0\0')) {
      if (exifOrientation(bytes, start, end) !== 1) return null;
    } else if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      // Baseline, extended sequential and progressive Huffman; precision, height, width, Nf.
      if (length < 8 || bytes[start] !== 8) return null;
      const components = bytes[start + 5];
      if (components !== 1 && components !== 3) return null;
      header = { height: u16(bytes, start + 1), width: u16(bytes, start + 3), components };
      if (header.width === 0 || header.height === 0) return null;
    } else if (marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xcc) {
      return null; // lossless, hierarchical or arithmetic-coded frames
    } else if (marker === 0xd9 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      return null; // no such marker belongs before the first scan
    }
    pos = end;
  }
  return null;
}

let codec: Promise<Codec | null> | null = null;

/**
 * This thread's decoder, started on first use; null when the codec cannot load here (then sharp
 * decodes everything, as before the codec existed).
 */
export function jpegCodec(): Promise<Codec | null> {
  codec ??= (async () => {
    try {
      const require = createRequire(import.meta.url);
      const factory = require('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs') as (
        options: object,
      ) => Promise<{ JPEGDecoder: new () => Codec }>;
      const wasm = require.resolve('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm');
      const module = await factory({ locateFile: () => wasm });
      return new module.JPEGDecoder();
    } catch {
      return null;
    }
  })();
  return codec;
}

/**
 * Decodes `bytes` with `decoder` when it is a plain JPEG within `limitInputPixels`; null for a
 * file to give to sharp (including one the codec fails on: sharp then decodes it or names the
 * fault). The pixels live in the decoder's memory and are overwritten by its next decode: use
 * them before anything else can run on this thread (no `await` in between).
 */
export function decodePlainJpeg(
  decoder: Codec,
  bytes: Uint8Array,
  limitInputPixels: number,
): RawImage | null {
  const header = plainJpegHeader(bytes);
  if (header === null || header.width * header.height > limitInputPixels) return null;
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    decoder.decode();
    const { width, height, componentCount } = decoder.getFrameInfo();
    const data = decoder.getDecodedBuffer();
    if (width !== header.width || height !== header.height || componentCount !== header.components)
      return null;
    if (data.length !== width * height * componentCount) return null;
    return { data, width, height, channels: header.components };
  } catch {
    // The codec throws C++ exceptions as numbers; sharp gives the file a real verdict.
    return null;
  }
}

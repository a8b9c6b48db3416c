/**
 * Decoders for the two formats on Keras's list that sharp's prebuilt libvips cannot read: BMP and
 * PPM/PGM/PBM (`sharp('x.bmp')` fails with "unsupported image format" in sharp 0.35.5). Both are
 * simple uncompressed formats; a file these cannot read throws a plain Error that the caller turns
 * into a CORRUPT_FILE naming the file.
 */

/** Decoded pixels, interleaved; 2 channels is gray + alpha. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d; // 'BM'
}

export function isPnm(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x50 && bytes[1]! >= 0x31 && bytes[1]! <= 0x36; // P1..P6
}

/** The image formats xfer decodes, as `sniffImageFormat` names them. */
export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'bmp' | 'pnm' | 'heif';

// ISO-BMFF brands of AVIF and HEIF still images (the 'ftyp' box that opens the file).
const HEIF_BRANDS = new Set([
  'avif',
  'avis',
  'heic',
  'heix',
  'heim',
  'heis',
  'hevc',
  'mif1',
  'msf1',
]);

function ascii(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...bytes.subarray(start, end));
}

/**
 * The format of an image from its first bytes (32 are enough), never from its name; undefined for
 * anything else. Only these formats reach a decoder: libvips can also load SVG, PDF, its own .v
 * format and more, whose parsers are attack surface a folder of photos does not need.
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) return 'gif';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  if (b.length >= 4 && (ascii(b, 0, 4) === 'II*\0' || ascii(b, 0, 4) === 'MM\0*')) return 'tiff';
  if (b.length >= 12 && ascii(b, 4, 8) === 'ftyp' && HEIF_BRANDS.has(ascii(b, 8, 12)))
    return 'heif';
  if (isBmp(b)) return 'bmp';
  if (isPnm(b)) return 'pnm';
  return undefined;
}

/** Thrown before any pixel memory is allocated for an image larger than the limit. */
export class PixelLimitError extends Error {
  constructor(
    readonly width: number,
    readonly height: number,
    readonly limit: number,
  ) {
    super(
      `the image is ${width}x${height} = ${width * height} pixels, over the limit of ${limit} (limitInputPixels; a guard against decompression bombs). Pass a larger limitInputPixels if the file is trusted`,
    );
  }
}

export function checkPixelLimit(width: number, height: number, limit: number): void {
  if (width * height > limit) throw new PixelLimitError(width, height, limit);
}

function need(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

/** Value of `pixel` under a channel bit mask, scaled to 0..255 the way PIL's unpackers do. */
function maskChannel(pixel: number, mask: number): number {
  if (mask === 0) return 0;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  const value = (pixel & mask) >>> shift;
  return max === 255 ? value : Math.trunc((value * 255) / max);
}

/**
 * Windows bitmaps: 1/4/8-bit palette, 16-bit (5-5-5 or bit fields), 24-bit, 32-bit (BGRX, or bit
 * fields with alpha), bottom-up or top-down. RLE-compressed bitmaps are refused.
 */
export function decodeBmp(bytes: Uint8Array, maxPixels = Number.POSITIVE_INFINITY): RawImage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  need(bytes.length >= 26, 'BMP header is truncated');
  const dataOffset = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  let width: number;
  let height: number;
  let bpp: number;
  let compression = 0;
  let colorsUsed = 0;
  let paletteEntry = 4;
  if (headerSize === 12) {
    width = view.getUint16(18, true);
    height = view.getInt16(20, true);
    bpp = view.getUint16(24, true);
    paletteEntry = 3;
  } else {
    need(headerSize >= 40 && bytes.length >= 14 + 40, 'BMP info header is truncated');
    width = view.getInt32(18, true);
    height = view.getInt32(22, true);
    bpp = view.getUint16(28, true);
    compression = view.getUint32(30, true);
    colorsUsed = view.getUint32(46, true);
  }
  const topDown = height < 0;
  height = Math.abs(height);
  checkPixelLimit(width, height, maxPixels);
  need(width > 0 && height > 0, `BMP has invalid size ${width}x${height}`);
  // 0 = BI_RGB, 3 = BI_BITFIELDS, 6 = BI_ALPHABITFIELDS; 1, 2 are RLE8/RLE4.
  need(
    compression === 0 || compression === 3 || compression === 6,
    `BMP compression ${compression} (RLE) is not supported`,
  );

  let masks: [number, number, number, number] | undefined;
  if (compression === 3 || compression === 6) {
    // Masks sit inside V4/V5 headers, or right after a 40-byte header.
    const at = 14 + 40;
    need(bytes.length >= at + 12, 'BMP bit masks are truncated');
    const alpha = headerSize >= 56 || compression === 6 ? view.getUint32(at + 12, true) : 0;
    masks = [
      view.getUint32(at, true),
      view.getUint32(at + 4, true),
      view.getUint32(at + 8, true),
      alpha,
    ];
  } else if (bpp === 16) {
    masks = [0x7c00, 0x03e0, 0x001f, 0];
  }

  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const count = colorsUsed || 1 << bpp;
    const start = 14 + headerSize;
    need(bytes.length >= start + count * paletteEntry, 'BMP palette is truncated');
    palette = new Uint8Array(count * 3);
    for (let i = 0; i < count; i++) {
      const p = start + i * paletteEntry;
      palette[i * 3] = bytes[p + 2]!;
      palette[i * 3 + 1] = bytes[p + 1]!;
      palette[i * 3 + 2] = bytes[p]!;
    }
  }

  const hasAlpha = masks !== undefined && masks[3] !== 0;
  const channels = hasAlpha ? 4 : 3;
  const stride = Math.ceil((width * bpp) / 32) * 4;
  need(bytes.length >= dataOffset + stride * height, 'BMP pixel data is truncated');
  const out = new Uint8Array(width * height * channels);
  for (let row = 0; row < height; row++) {
    const y = topDown ? row : height - 1 - row;
    const line = dataOffset + row * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      if (palette) {
        const bit = x * bpp;
        const byte = bytes[line + (bit >> 3)]!;
        const index = (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        need(index * 3 < palette.length, 'BMP palette index out of range');
        out[o] = palette[index * 3]!;
        out[o + 1] = palette[index * 3 + 1]!;
        out[o + 2] = palette[index * 3 + 2]!;
      } else if (masks) {
        const p = line + x * (bpp >> 3);
        const pixel = bpp === 16 ? view.getUint16(p, true) : view.getUint32(p, true);
        out[o] = maskChannel(pixel, masks[0]);
        out[o + 1] = maskChannel(pixel, masks[1]);
        out[o + 2] = maskChannel(pixel, masks[2]);
        if (hasAlpha) out[o + 3] = maskChannel(pixel, masks[3]);
      } else {
        need(bpp === 24 || bpp === 32, `BMP bit depth ${bpp} is not supported`);
        const p = line + x * (bpp >> 3);
        out[o] = bytes[p + 2]!;
        out[o + 1] = bytes[p + 1]!;
        out[o + 2] = bytes[p]!;
      }
    }
  }
  return { data: out, width, height, channels };
}

/** Netpbm: P1-P3 (plain text) and P4-P6 (binary); maxval other than 255 is scaled to 8 bits. */
export function decodePnm(bytes: Uint8Array, maxPixels = Number.POSITIVE_INFINITY): RawImage {
  const kind = bytes[1]! - 0x30;
  let pos = 2;
  const isSpace = (b: number) =>
    b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0b || b === 0x0c;
  const readToken = (): number => {
    for (;;) {
      while (pos < bytes.length && isSpace(bytes[pos]!)) pos++;
      if (bytes[pos] !== 0x23) break; // '#' comment to end of line
      while (pos < bytes.length && bytes[pos] !== 0x0a && bytes[pos] !== 0x0d) pos++;
    }
    const start = pos;
    while (pos < bytes.length && bytes[pos]! >= 0x30 && bytes[pos]! <= 0x39) pos++;
    need(pos > start, 'PNM header is malformed');
    return Number(new TextDecoder().decode(bytes.subarray(start, pos)));
  };
  const width = readToken();
  const height = readToken();
  const bitmap = kind === 1 || kind === 4;
  const maxval = bitmap ? 1 : readToken();
  need(width > 0 && height > 0 && maxval > 0 && maxval < 65536, 'PNM header has invalid values');
  checkPixelLimit(width, height, maxPixels);
  const channels = kind === 3 || kind === 6 ? 3 : 1;
  const count = width * height * channels;
  const out = new Uint8Array(count);
  const scale = (v: number) =>
    maxval === 255 ? v : Math.round((Math.min(v, maxval) * 255) / maxval);
  if (kind <= 3) {
    for (let i = 0; i < count; i++) {
      if (bitmap) {
        // Plain PBM digits may be packed without spaces; 1 is black.
        while (pos < bytes.length && bytes[pos] !== 0x30 && bytes[pos] !== 0x31) pos++;
        need(pos < bytes.length, 'PNM pixel data is truncated');
        out[i] = bytes[pos++] === 0x31 ? 0 : 255;
      } else {
        need(pos < bytes.length, 'PNM pixel data is truncated');
        out[i] = scale(readToken());
      }
    }
  } else {
    pos++; // the single whitespace after the header
    if (bitmap) {
      const stride = Math.ceil(width / 8);
      need(bytes.length >= pos + stride * height, 'PNM pixel data is truncated');
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const bit = (bytes[pos + y * stride + (x >> 3)]! >> (7 - (x & 7))) & 1;
          out[y * width + x] = bit ? 0 : 255;
        }
      }
    } else {
      const wide = maxval > 255;
      need(bytes.length >= pos + count * (wide ? 2 : 1), 'PNM pixel data is truncated');
      for (let i = 0; i < count; i++) {
        out[i] = scale(
          wide ? (bytes[pos + 2 * i]! << 8) | bytes[pos + 2 * i + 1]! : bytes[pos + i]!,
        );
      }
    }
  }
  return { data: out, width, height, channels };
}

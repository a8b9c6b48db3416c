/**
 * Reading an image out of a request: a raw `image/*` body or a multipart form upload, with the
 * size limit enforced on the bytes actually read (a missing or lying Content-Length changes
 * nothing), and every failure turned into an HTTP status with one clear message.
 */

/** An error answered as `{ error: { code, message } }` with `status`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface UploadedImage {
  bytes: Uint8Array;
  /** The uploaded file name, or 'request body' for a raw upload. */
  label: string;
}

function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    'PAYLOAD_TOO_LARGE',
    `the request body is larger than the limit of ${limit} bytes; send a smaller image (or start the server with a larger --max-body).`,
    { connection: 'close' },
  );
}

/** Reads at most `limit` bytes of the body; one byte more is a 413, and the rest is not read. */
export async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch (error) {
      // The client went away mid-upload; nobody reads this answer, but it is not a server fault.
      throw new HttpError(
        400,
        'BODY_ABORTED',
        `the request body was cut off: ${(error as Error).message}.`,
      );
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function mediaType(request: Request): string {
  return (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Checks the content type before any byte of the body is read. */
export function checkContentType(request: Request): 'image' | 'multipart' {
  const type = mediaType(request);
  if (type.startsWith('image/')) return 'image';
  if (type === 'multipart/form-data') return 'multipart';
  throw new HttpError(
    415,
    'UNSUPPORTED_MEDIA_TYPE',
    `Content-Type ${type === '' ? '(none)' : `'${type}'`} is not accepted; send the image itself with Content-Type image/* (e.g. image/jpeg), or a multipart/form-data upload with the file in the field 'image'.`,
  );
}

/** The image of a multipart form: the field `image`, else the first file in the form. */
async function fromMultipart(bytes: Uint8Array, contentType: string): Promise<UploadedImage> {
  let form: FormData;
  try {
    form = await new Response(bytes, { headers: { 'content-type': contentType } }).formData();
  } catch (error) {
    throw new HttpError(
      400,
      'BAD_MULTIPART',
      `the multipart/form-data body could not be parsed (${(error as Error).message}); send a form with the image file in the field 'image'.`,
    );
  }
  const named = form.get('image');
  let file: File | undefined = typeof named === 'object' && named !== null ? named : undefined;
  if (file === undefined) {
    for (const [, value] of form.entries()) {
      if (typeof value === 'object') {
        file = value;
        break;
      }
    }
  }
  if (file === undefined) {
    throw new HttpError(
      400,
      'NO_IMAGE',
      `the form holds no file${named !== null ? " (the field 'image' is text, not a file)" : ''}; upload the image in the field 'image'.`,
    );
  }
  return { bytes: new Uint8Array(await file.arrayBuffer()), label: file.name || 'upload' };
}

/** The image bytes of a POST /predict request. */
export async function readUploadedImage(request: Request, limit: number): Promise<UploadedImage> {
  const kind = checkContentType(request);
  const bytes = await readLimited(request, limit);
  const image =
    kind === 'image'
      ? { bytes, label: 'request body' }
      : await fromMultipart(bytes, request.headers.get('content-type') ?? '');
  if (image.bytes.byteLength === 0) {
    throw new HttpError(
      400,
      'EMPTY_IMAGE',
      `the image (${image.label}) is empty: 0 bytes were received.`,
    );
  }
  return image;
}

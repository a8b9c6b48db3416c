/**
 * `hf:<org>/<repo>[/<file>]` weight sources: a Hugging Face Hub file (by default the repo's
 * `model.safetensors`), downloaded through `getFile` into the cache and hash-checked when a hash is
 * given. `HF_ENDPOINT` (huggingface_hub's variable) points at a mirror.
 */
import { invalidParameterError } from '../errors.js';

const DEFAULT_ENDPOINT = 'https://huggingface.co';
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface HfSource {
  readonly url: string;
  /** The cache file name: `<org>--<repo>--<file>`, unique per repo and file. */
  readonly cacheName: string;
}

export function isHfSource(source: string): boolean {
  return source.startsWith('hf:');
}

/**
 * `hf:timm/resnet50.tv_in1k` -> `https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors`.
 * @example
 * hfUrl('hf:timm/mobilenetv2_100.ra_in1k').url;
 */
export function hfUrl(
  source: string,
  endpoint = process.env.HF_ENDPOINT || DEFAULT_ENDPOINT,
): HfSource {
  const parts = source.slice(3).split('/');
  const [org, repo, ...rest] = parts;
  const filePath = rest.length > 0 ? rest : ['model.safetensors'];
  if (
    org === undefined ||
    repo === undefined ||
    ![org, repo, ...filePath].every((p) => PART.test(p) && p !== '..' && !p.includes('..'))
  ) {
    throw invalidParameterError(
      'source',
      "'hf:<org>/<repo>' or 'hf:<org>/<repo>/<file>' (letters, digits, '.', '_', '-')",
      source,
    );
  }
  const base = endpoint.replace(/\/+$/, '');
  return {
    url: `${base}/${org}/${repo}/resolve/main/${filePath.map(encodeURIComponent).join('/')}`,
    cacheName: `${org}--${repo}--${filePath.join('--')}`,
  };
}

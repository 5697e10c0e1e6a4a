/** `onnx/manifest.json` (written by `tiny-cats export`, see tiny_cats/onnx/manifest.py) and where to find it. */
import type { FlowMatchConfig } from './scheduler';
import type { Preprocessing } from './preprocess';

export type Precision = 'fp32' | 'int8';

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: (number | string)[];
}

export interface FileInfo {
  path: string;
  bytes: number;
  sha256?: string;
  opset?: number;
  precision: Precision;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  [key: string]: unknown;
}

export interface ClassifierSection {
  model_type: string;
  backbone?: string;
  files: Partial<Record<Precision, FileInfo>>;
  preprocessing: Preprocessing;
  labels: string[];
}

export interface GeneratorSection {
  files: Partial<Record<Precision, FileInfo>>;
  sample_size: number;
  in_channels: number;
  num_classes: number;
  null_class_id: number;
  labels: string[];
  transformer_config: Record<string, unknown>;
  scheduler: {
    class_name: string;
    config: FlowMatchConfig;
    default_schedule?: { timesteps: number[]; sigmas: number[] };
  };
  sampling: { num_inference_steps: number; guidance_scale: number; [key: string]: unknown };
}

export interface Manifest {
  format_version: number;
  tiny_cats_version?: string;
  classifier?: ClassifierSection;
  generator?: GeneratorSection;
}

export const MANIFEST_PATH = 'onnx/manifest.json';
/** The published model package (tiny_cats.hub_package.DEFAULT_REPO_ID). */
export const DEFAULT_HUB_REPO = 'd4oit/tiny-cats-model';
export const hubBaseUrl = (repo: string): string => `https://huggingface.co/${repo}/resolve/main/`;

/**
 * The base URL all model files and config come from.
 * `?model=` wins: an absolute or page-relative URL (a local `tiny-cats export` folder served over
 * HTTP, a Hub `resolve/main/` URL) or a Hub repo id `owner/name`. Otherwise VITE_MODEL_BASE from the
 * build, else `/models/` in development and the published Hub repo in production.
 */
export function resolveModelBase(search: string, pageUrl: string, fallback: string): string {
  const param = new URLSearchParams(search).get('model');
  let base = param?.trim() || fallback;
  if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(base) && !base.startsWith('.')) base = hubBaseUrl(base);
  const url = new URL(base, pageUrl).href;
  return url.endsWith('/') ? url : `${url}/`;
}

export function defaultModelBase(env: { DEV?: boolean; VITE_MODEL_BASE?: string }): string {
  if (env.VITE_MODEL_BASE) return env.VITE_MODEL_BASE;
  return env.DEV ? '/models/' : hubBaseUrl(DEFAULT_HUB_REPO);
}

/** Checks the parts of the manifest the app relies on; throws one readable error. */
export function validateManifest(value: unknown): Manifest {
  const m = value as Manifest;
  const problems: string[] = [];
  if (!m || typeof m !== 'object') throw new Error('manifest is not a JSON object');
  if (m.format_version !== 1) problems.push(`format_version ${String(m.format_version)} (this app reads 1)`);
  if (!m.classifier && !m.generator) problems.push('neither a classifier nor a generator section');
  if (m.classifier) {
    if (!m.classifier.files?.fp32 && !m.classifier.files?.int8) problems.push('classifier has no files');
    if (!Array.isArray(m.classifier.labels) || !m.classifier.labels.length) problems.push('classifier has no labels');
    if (!m.classifier.preprocessing?.size) problems.push('classifier has no preprocessing size');
  }
  if (m.generator) {
    if (!m.generator.files?.fp32 && !m.generator.files?.int8) problems.push('generator has no files');
    if (m.generator.labels?.length !== m.generator.num_classes) problems.push('generator labels do not match num_classes');
    if (!m.generator.scheduler?.config) problems.push('generator has no scheduler config');
  }
  if (problems.length) throw new Error(`unusable manifest: ${problems.join('; ')}`);
  return m;
}

export async function fetchManifest(base: string): Promise<Manifest> {
  const url = new URL(MANIFEST_PATH, base).href;
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`cannot reach ${url} (${(err as Error).message})`);
  }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return validateManifest(await response.json());
}

/**
 * Which file each model loads: the precision measured faster in headless Chromium's wasm backend
 * (see frontend/README.md), when the manifest has it; `?classifier=fp32|int8` / `?generator=...` override.
 */
export const PREFERRED_PRECISION: Record<'classifier' | 'generator', Precision> = {
  classifier: 'fp32', // static QDQ int8 measured 1.3-1.7x slower than fp32 in wasm over two runs (frontend/README.md)
  generator: 'int8', // dynamic MatMul int8 measured faster than fp32 in wasm
};

export function choosePrecision(
  section: { files: Partial<Record<Precision, FileInfo>> },
  model: 'classifier' | 'generator',
  search = '',
): Precision {
  const asked = new URLSearchParams(search).get(model);
  const order: Precision[] = [];
  if (asked === 'fp32' || asked === 'int8') order.push(asked);
  order.push(PREFERRED_PRECISION[model], 'fp32', 'int8');
  const found = order.find((p) => section.files[p]);
  if (!found) throw new Error(`no ${model} file in the manifest`);
  return found;
}

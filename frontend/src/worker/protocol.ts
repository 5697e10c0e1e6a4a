/** Messages between the page and the inference worker. */
import type { Manifest, Precision } from '../lib/manifest';
import type { LatencyStats } from '../lib/stats';

export interface BackendInfo {
  backend: 'wasm' | 'webgpu';
  webgpu_available: boolean;
  num_threads: number;
  cross_origin_isolated: boolean;
  onnxruntime_web: string;
  logical_cores: number;
}

export type Request =
  | { type: 'init'; id: number; base: string; ortBase: string; manifest: Manifest; search: string }
  | { type: 'classify'; id: number; rgba: Uint8ClampedArray; width: number; height: number }
  | { type: 'generate'; id: number; classId: number; steps: number; guidance: number; seed: number }
  | { type: 'benchmark'; id: number; repeats: number; generatorSteps: number; generatorRepeats: number };

export interface ClassifyResult {
  probabilities: number[];
  precision: Precision;
  preprocess_ms: number;
  inference_ms: number;
}

export interface GenerateResult {
  rgba: Uint8ClampedArray;
  width: number;
  height: number;
  precision: Precision;
  total_ms: number;
}

export interface RuntimeBase {
  runtime: string;
  precision: Precision;
  model_path: string;
  model_bytes: number;
  load_seconds: number;
  backend: string;
}

export interface ClassifierRuntime extends RuntimeBase {
  batches: LatencyStats[];
}

export interface GeneratorRun {
  num_inference_steps: number;
  guidance_scale: number;
  classifier_free_guidance: boolean;
  per_image: LatencyStats;
  per_step_ms: number;
}

export interface GeneratorRuntime extends RuntimeBase {
  runs: GeneratorRun[];
}

export interface BenchmarkResult {
  schema_version: 1;
  kind: 'browser_inference_benchmark';
  created_utc: string;
  seed: number;
  environment: BackendInfo & { user_agent: string };
  classifier?: { image_size: number; measures: string; runtimes: ClassifierRuntime[] };
  generator?: { resolution: number; measures: string; runtimes: GeneratorRuntime[] };
}

export type Response =
  | { type: 'ready'; id: number; info: BackendInfo }
  | { type: 'progress'; id: number; done: number; total: number; label?: string }
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string };

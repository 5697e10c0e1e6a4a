/// <reference lib="webworker" />
/**
 * All ONNX Runtime work runs here, off the page's main thread: model loading, classifier
 * preprocessing and inference, the denoising loop, and the benchmark.
 */
import * as ort from 'onnxruntime-web';
import { choosePrecision, type FileInfo, type Manifest, type Precision } from '../lib/manifest';
import { preprocess } from '../lib/preprocess';
import { softmax } from '../lib/labels';
import { gaussianNoise, mulberry32 } from '../lib/prng';
import { sampleFlowMatch, toImage, type Denoiser } from '../lib/scheduler';
import { latencyStats } from '../lib/stats';
import type {
  BackendInfo, BenchmarkResult, ClassifierRuntime, ClassifyResult, GenerateResult, GeneratorRuntime, Request, Response,
} from './protocol';

declare const self: DedicatedWorkerGlobalScope;

let base = '';
let manifest: Manifest | null = null;
let search = '';
let info: BackendInfo | null = null;

interface Loaded {
  session: ort.InferenceSession;
  file: FileInfo;
  loadSeconds: number;
  backend: string;
}
const sessions = new Map<string, Promise<Loaded>>();

const post = (message: Response, transfer: Transferable[] = []) => self.postMessage(message, transfer);

async function detectBackend(): Promise<BackendInfo> {
  let webgpu = false;
  try {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    webgpu = Boolean(gpu && (await gpu.requestAdapter()));
  } catch {
    webgpu = false;
  }
  const cores = navigator.hardwareConcurrency || 1;
  const threads = self.crossOriginIsolated ? Math.max(1, Math.min(4, cores)) : 1;
  return {
    backend: webgpu ? 'webgpu' : 'wasm',
    webgpu_available: webgpu,
    num_threads: threads,
    cross_origin_isolated: self.crossOriginIsolated,
    onnxruntime_web: ort.env.versions?.web ?? 'unknown',
    logical_cores: cores,
  };
}

function section<K extends 'classifier' | 'generator'>(model: K): NonNullable<Manifest[K]> {
  const s = manifest?.[model];
  if (!s) throw new Error(`the manifest at ${base} has no ${model}`);
  return s as NonNullable<Manifest[K]>;
}

async function createSession(bytes: Uint8Array, providers: string[]): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { executionProviders: providers, graphOptimizationLevel: 'all' });
}

function loadSession(model: 'classifier' | 'generator', precision: Precision): Promise<Loaded> {
  const key = `${model}:${precision}`;
  let pending = sessions.get(key);
  if (!pending) {
    pending = (async () => {
      const file = section(model).files[precision];
      if (!file) throw new Error(`no ${precision} ${model} file in the manifest`);
      const start = performance.now();
      const url = new URL(file.path, base).href;
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      let backend = info?.backend ?? 'wasm';
      let session: ort.InferenceSession;
      try {
        session = await createSession(bytes, backend === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm']);
      } catch (err) {
        if (backend !== 'webgpu') throw err;
        backend = 'wasm'; // an operator WebGPU cannot run: fall back to the CPU
        session = await createSession(bytes, ['wasm']);
      }
      return { session, file, loadSeconds: (performance.now() - start) / 1000, backend };
    })();
    pending.catch(() => sessions.delete(key));
    sessions.set(key, pending);
  }
  return pending;
}

async function runClassifier(loaded: Loaded, pixels: Float32Array, batch: number): Promise<Float32Array> {
  const size = section('classifier').preprocessing.size;
  const input = loaded.file.inputs[0].name;
  const output = loaded.file.outputs[0].name;
  const tensor = new ort.Tensor('float32', pixels, [batch, 3, size, size]);
  const result = await loaded.session.run({ [input]: tensor });
  return result[output].data as Float32Array;
}

async function classify(rgba: Uint8ClampedArray, width: number, height: number): Promise<ClassifyResult> {
  const precision = choosePrecision(section('classifier'), 'classifier', search);
  const loaded = await loadSession('classifier', precision);
  const t0 = performance.now();
  const pixels = preprocess({ data: rgba, width, height, channels: 4 }, section('classifier').preprocessing);
  const t1 = performance.now();
  const logits = await runClassifier(loaded, pixels, 1);
  const t2 = performance.now();
  return { probabilities: softmax(logits), precision, preprocess_ms: t1 - t0, inference_ms: t2 - t1 };
}

function denoiserFor(loaded: Loaded): Denoiser {
  const g = section('generator');
  const byName = (name: string) => loaded.file.inputs.find((i) => i.name === name)?.name ?? name;
  const [sampleName, timestepName, labelName] = [byName('sample'), byName('timestep'), byName('class_labels')];
  const labelType = loaded.file.inputs.find((i) => i.name === labelName)?.dtype ?? 'int64';
  const output = loaded.file.outputs[0].name;
  const { in_channels: c, sample_size: s } = g;
  return async (sample, timesteps, labels) => {
    const batch = labels.length;
    const feeds: Record<string, ort.Tensor> = {
      [sampleName]: new ort.Tensor('float32', sample, [batch, c, s, s]),
      [timestepName]: new ort.Tensor('float32', timesteps, [batch]),
      [labelName]: labelType === 'int32'
        ? new ort.Tensor('int32', Int32Array.from(labels), [batch])
        : new ort.Tensor('int64', BigInt64Array.from(labels.map((l) => BigInt(l))), [batch]),
    };
    const result = await loaded.session.run(feeds);
    return result[output].data as Float32Array;
  };
}

async function generateOne(
  loaded: Loaded, classId: number, steps: number, guidance: number, seed: number,
  onStep?: (done: number, total: number) => void,
): Promise<Float32Array> {
  const g = section('generator');
  const noise = gaussianNoise(seed, g.in_channels * g.sample_size * g.sample_size);
  return sampleFlowMatch({
    config: g.scheduler.config, numInferenceSteps: steps, guidanceScale: guidance, nullClassId: g.null_class_id,
    classIds: [classId], noise, denoiser: denoiserFor(loaded), onStep,
  });
}

function toRGBA(sample: Float32Array, channels: number, size: number): Uint8ClampedArray {
  const image = toImage(sample);
  const plane = size * size;
  const rgba = new Uint8ClampedArray(plane * 4);
  for (let i = 0; i < plane; i++) {
    for (let ch = 0; ch < 3; ch++) rgba[i * 4 + ch] = Math.round(image[(channels === 1 ? 0 : ch) * plane + i] * 255);
    rgba[i * 4 + 3] = 255;
  }
  return rgba;
}

async function generate(id: number, classId: number, steps: number, guidance: number, seed: number): Promise<GenerateResult> {
  const g = section('generator');
  if (!Number.isInteger(classId) || classId < 0 || classId >= g.num_classes) throw new Error(`no breed with id ${classId}`);
  const precision = choosePrecision(g, 'generator', search);
  post({ type: 'progress', id, done: 0, total: steps, label: 'loading the generator' });
  const loaded = await loadSession('generator', precision);
  const start = performance.now();
  const sample = await generateOne(loaded, classId, steps, guidance, seed, (done, total) =>
    post({ type: 'progress', id, done, total, label: 'denoising' }));
  const rgba = toRGBA(sample, g.in_channels, g.sample_size);
  return { rgba, width: g.sample_size, height: g.sample_size, precision, total_ms: performance.now() - start };
}

async function timeCalls(fn: () => Promise<unknown>, repeats: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await fn();
    ms.push(performance.now() - start);
  }
  return ms;
}

async function benchmark(id: number, repeats: number, generatorSteps: number, generatorRepeats: number): Promise<BenchmarkResult> {
  const result: BenchmarkResult = {
    schema_version: 1, kind: 'browser_inference_benchmark', created_utc: new Date().toISOString(), seed: 0,
    environment: { ...(info as BackendInfo), user_agent: navigator.userAgent },
  };
  const precisions: Precision[] = ['fp32', 'int8'];
  const tasks: string[] = [];
  if (manifest?.classifier) for (const p of precisions) if (manifest.classifier.files[p]) tasks.push(`classifier ${p}`);
  if (manifest?.generator) for (const p of precisions) if (manifest.generator.files[p]) tasks.push(`generator ${p}`);
  let done = 0;
  const progress = (label: string) => post({ type: 'progress', id, done, total: tasks.length, label });
  const warmup = 2;
  if (manifest?.classifier) {
    const c = manifest.classifier;
    const size = c.preprocessing.size;
    const runtimes: ClassifierRuntime[] = [];
    for (const precision of precisions) {
      if (!c.files[precision]) continue;
      progress(`classifier ${precision}`);
      const loaded = await loadSession('classifier', precision);
      const batches = [];
      for (const batch of [1, 8]) {
        const uniform = mulberry32(0);
        const pixels = Float32Array.from({ length: batch * 3 * size * size }, () => uniform() * 2 - 1);
        const ms = await timeCalls(() => runClassifier(loaded, pixels, batch), repeats, warmup);
        batches.push(latencyStats(ms, batch, warmup));
      }
      runtimes.push({
        runtime: `onnxruntime_web_${precision}`, precision, model_path: loaded.file.path, model_bytes: loaded.file.bytes,
        load_seconds: loaded.loadSeconds, backend: loaded.backend, batches,
      });
      done++;
    }
    result.classifier = {
      image_size: size,
      measures: 'model forward on preprocessed pixel_values (float32, random, fixed seed); no decode/resize',
      runtimes,
    };
  }
  if (manifest?.generator) {
    const g = manifest.generator;
    const runtimes: GeneratorRuntime[] = [];
    const guidanceDefault = g.sampling.guidance_scale;
    for (const precision of precisions) {
      if (!g.files[precision]) continue;
      progress(`generator ${precision}`);
      const loaded = await loadSession('generator', precision);
      const runs = [];
      for (const guidance of [1.0, guidanceDefault]) {
        const ms = await timeCalls(() => generateOne(loaded, 0, generatorSteps, guidance, 0), generatorRepeats, 1);
        const stats = latencyStats(ms, 1, 1);
        runs.push({
          num_inference_steps: generatorSteps, guidance_scale: guidance, classifier_free_guidance: guidance > 1,
          per_image: stats, per_step_ms: stats.mean_ms / generatorSteps,
        });
        if (!(guidanceDefault > 1)) break;
      }
      runtimes.push({
        runtime: `onnxruntime_web_${precision}`, precision, model_path: loaded.file.path, model_bytes: loaded.file.bytes,
        load_seconds: loaded.loadSeconds, backend: loaded.backend, runs,
      });
      done++;
    }
    result.generator = {
      resolution: g.sample_size,
      measures: 'one image end to end (seeded noise, every denoising step, conversion to RGBA); class 0',
      runtimes,
    };
  }
  post({ type: 'progress', id, done, total: tasks.length, label: 'done' });
  return result;
}

self.onmessage = async (event: MessageEvent<Request>) => {
  const request = event.data;
  try {
    switch (request.type) {
      case 'init': {
        base = request.base;
        manifest = request.manifest;
        search = request.search;
        info = await detectBackend();
        ort.env.wasm.wasmPaths = request.ortBase;
        ort.env.wasm.numThreads = info.num_threads;
        ort.env.wasm.proxy = false; // already off the main thread
        ort.env.logLevel = 'error';
        post({ type: 'ready', id: request.id, info });
        break;
      }
      case 'classify': {
        const result = await classify(request.rgba, request.width, request.height);
        post({ type: 'result', id: request.id, result });
        break;
      }
      case 'generate': {
        const result = await generate(request.id, request.classId, request.steps, request.guidance, request.seed);
        post({ type: 'result', id: request.id, result }, [result.rgba.buffer]);
        break;
      }
      case 'benchmark': {
        const result = await benchmark(request.id, request.repeats, request.generatorSteps, request.generatorRepeats);
        post({ type: 'result', id: request.id, result });
        break;
      }
    }
  } catch (err) {
    post({ type: 'error', id: request.id, message: err instanceof Error ? err.message : String(err) });
  }
};

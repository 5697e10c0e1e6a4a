/** The page's side of the inference worker: one request at a time, progress callbacks, typed results. */
import type { Manifest } from './manifest';
import type { BackendInfo, BenchmarkResult, ClassifyResult, GenerateResult, Request, Response } from '../worker/protocol';

type Progress = (done: number, total: number, label?: string) => void;
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export class InferenceClient {
  private worker: Worker;
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; progress?: Progress }>();
  readonly ready: Promise<BackendInfo>;

  constructor(base: string, manifest: Manifest) {
    this.worker = new Worker(new URL('../worker/inference.worker.ts', import.meta.url), { type: 'module', name: 'inference' });
    this.worker.onmessage = (event: MessageEvent<Response>) => this.onMessage(event.data);
    this.worker.onerror = (event) => {
      const error = new Error(`inference worker failed: ${event.message || 'could not start'}`);
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    };
    const ortBase = new URL(`${import.meta.env.BASE_URL}ort/`, window.location.href).href;
    this.ready = this.request({ type: 'init', base, ortBase, manifest, search: window.location.search }) as Promise<BackendInfo>;
  }

  private onMessage(message: Response) {
    const entry = this.pending.get(message.id);
    if (!entry) return;
    if (message.type === 'progress') {
      entry.progress?.(message.done, message.total, message.label);
      return;
    }
    this.pending.delete(message.id);
    if (message.type === 'error') entry.reject(new Error(message.message));
    else if (message.type === 'ready') entry.resolve(message.info);
    else entry.resolve(message.result);
  }

  private request(body: DistributiveOmit<Request, 'id'>, progress?: Progress, transfer: Transferable[] = []): Promise<unknown> {
    const run = () => new Promise<unknown>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject, progress });
      this.worker.postMessage({ ...body, id } as Request, transfer);
    });
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  classify(rgba: Uint8ClampedArray, width: number, height: number): Promise<ClassifyResult> {
    return this.request({ type: 'classify', rgba, width, height }, undefined, [rgba.buffer]) as Promise<ClassifyResult>;
  }

  generate(classId: number, steps: number, guidance: number, seed: number, progress?: Progress): Promise<GenerateResult> {
    return this.request({ type: 'generate', classId, steps, guidance, seed }, progress) as Promise<GenerateResult>;
  }

  benchmark(repeats: number, generatorSteps: number, generatorRepeats: number, progress?: Progress): Promise<BenchmarkResult> {
    return this.request({ type: 'benchmark', repeats, generatorSteps, generatorRepeats }, progress) as Promise<BenchmarkResult>;
  }
}

import { useState } from 'react';
import type { AppContext } from '../App';
import type { BenchmarkResult } from '../worker/protocol';
import python from '../../../benchmarks/inference.json';

const ms = (v: number) => v.toFixed(1);
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

interface PythonBatch { batch_size: number; p50_ms: number; p95_ms: number; throughput_per_s: number }
interface PythonRuntime { runtime: string; model_path: string; batches: PythonBatch[] }
const pythonRuntimes = ((python as { classifier?: { runtimes?: PythonRuntime[] } }).classifier?.runtimes ?? [])
  .filter((r) => r.runtime.startsWith('onnxruntime'));

export function BenchmarkPage({ context }: { context: AppContext }) {
  const [repeats, setRepeats] = useState('20');
  const [steps, setSteps] = useState('8');
  const [progress, setProgress] = useState<{ done: number; total: number; label?: string } | null>(null);
  const [result, setResult] = useState<BenchmarkResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const info = context.info;

  const run = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(null);
    setResult(null);
    setProgress({ done: 0, total: 1 });
    try {
      const r = Math.max(3, Math.min(200, Math.round(Number(repeats)) || 20));
      const s = Math.max(1, Math.min(50, Math.round(Number(steps)) || 8));
      setResult(await context.client.benchmark(r, s, 3, (done, total, label) => setProgress({ done, total, label })));
    } catch (err) {
      setError(`Benchmark failed: ${(err as Error).message}`);
    } finally {
      setProgress(null);
    }
  };

  const download = () => {
    if (!result) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([JSON.stringify(result, null, 2)], { type: 'application/json' }));
    a.download = 'browser_inference.json';
    a.click();
  };

  const files = [
    ...Object.values(context.manifest.classifier?.files ?? {}),
    ...Object.values(context.manifest.generator?.files ?? {}),
  ];
  return (
    <section aria-labelledby="benchmark-title">
      <h2 id="benchmark-title">Benchmark this browser</h2>
      <p className="lead">
        Runs both models here and reports latency with the metric names of <code>benchmarks/inference.json</code>:
        p50/p95 over timed calls after 2 warm-up calls, and throughput = batch × 1000 / mean ms.
      </p>
      <dl className="facts" data-testid="backend">
        <dt>Backend</dt><dd>{info ? `${info.backend}${info.backend === 'wasm' ? ` (${info.num_threads} thread${info.num_threads > 1 ? 's' : ''})` : ''}` : '…'}</dd>
        <dt>WebGPU</dt><dd>{info ? (info.webgpu_available ? 'available' : 'not available') : '…'}</dd>
        <dt>Cross-origin isolated</dt><dd>{info ? String(info.cross_origin_isolated) : '…'}</dd>
        <dt>ONNX Runtime Web</dt><dd>{info?.onnxruntime_web ?? '…'}</dd>
      </dl>
      <h3>Model files</h3>
      <div className="table-scroll">
      <table data-testid="files">
        <thead><tr><th scope="col">File</th><th scope="col">Precision</th><th scope="col">Size</th></tr></thead>
        <tbody>{files.map((f) => <tr key={f.path}><td><code>{f.path}</code></td><td>{f.precision}</td><td>{mb(f.bytes)}</td></tr>)}</tbody>
      </table>
      </div>
      <form className="controls" onSubmit={run}>
        <label>Classifier repeats
          <input type="number" min={3} max={200} value={repeats} onChange={(e) => setRepeats(e.target.value)} data-testid="repeats" />
        </label>
        <label>Generator steps
          <input type="number" min={1} max={50} value={steps} onChange={(e) => setSteps(e.target.value)} data-testid="bench-steps" />
        </label>
        <button type="submit" className="primary" disabled={progress !== null} data-testid="run-benchmark">
          {progress ? 'Running…' : 'Run benchmark'}
        </button>
      </form>
      <div aria-live="polite">
        {progress && (
          <>
            <label htmlFor="bench-progress">Measuring {progress.label ?? ''}…</label>
            <progress id="bench-progress" max={progress.total} value={progress.done} />
          </>
        )}
        {error && <p className="error" role="alert">{error}</p>}
      </div>
      {result && (
        <div data-testid="benchmark-result">
          {result.classifier && (
            <>
              <h3>Classifier ({result.classifier.image_size} px, forward pass only)</h3>
              <div className="table-scroll">
                <table data-testid="classifier-table">
                  <thead><tr><th scope="col">Runtime</th><th scope="col">Batch</th><th scope="col">p50_ms</th><th scope="col">p95_ms</th>
                    <th scope="col">throughput_per_s</th><th scope="col">load_seconds</th><th scope="col">Backend</th></tr></thead>
                  <tbody>
                    {result.classifier.runtimes.flatMap((r) => r.batches.map((b) => (
                      <tr key={`${r.runtime}-${b.batch_size}`} data-testid="classifier-row" data-runtime={r.runtime} data-batch={b.batch_size} data-p50={b.p50_ms}>
                        <td>{r.runtime} <small>({mb(r.model_bytes)})</small></td><td>{b.batch_size}</td><td>{ms(b.p50_ms)}</td><td>{ms(b.p95_ms)}</td>
                        <td>{b.throughput_per_s.toFixed(1)}</td><td>{r.load_seconds.toFixed(2)}</td><td>{r.backend}</td>
                      </tr>
                    )))}
                    {pythonRuntimes.flatMap((r) => r.batches.map((b) => (
                      <tr key={`py-${r.runtime}-${b.batch_size}`} className="reference">
                        <td>Python {r.runtime} <small>(benchmarks/inference.json)</small></td><td>{b.batch_size}</td><td>{ms(b.p50_ms)}</td>
                        <td>{ms(b.p95_ms)}</td><td>{b.throughput_per_s.toFixed(1)}</td><td>–</td><td>native CPU</td>
                      </tr>
                    )))}
                  </tbody>
                </table>
              </div>
            </>
          )}
          {result.generator && (
            <>
              <h3>Generator ({result.generator.resolution} px, one image end to end)</h3>
              <div className="table-scroll">
                <table data-testid="generator-table">
                  <thead><tr><th scope="col">Runtime</th><th scope="col">Steps</th><th scope="col">Guidance</th><th scope="col">p50_ms</th>
                    <th scope="col">p95_ms</th><th scope="col">per_step_ms</th><th scope="col">throughput_per_s</th><th scope="col">Backend</th></tr></thead>
                  <tbody>
                    {result.generator.runtimes.flatMap((r) => r.runs.map((run) => (
                      <tr key={`${r.runtime}-${run.guidance_scale}`} data-testid="generator-row" data-runtime={r.runtime} data-p50={run.per_image.p50_ms}>
                        <td>{r.runtime} <small>({mb(r.model_bytes)})</small></td><td>{run.num_inference_steps}</td><td>{run.guidance_scale}</td>
                        <td>{ms(run.per_image.p50_ms)}</td><td>{ms(run.per_image.p95_ms)}</td><td>{ms(run.per_step_ms)}</td>
                        <td>{run.per_image.throughput_per_s.toFixed(2)}</td><td>{r.backend}</td>
                      </tr>
                    )))}
                  </tbody>
                </table>
              </div>
            </>
          )}
          <button type="button" onClick={download}>Download results (JSON)</button>
          <details>
            <summary>Raw results</summary>
            <pre data-testid="benchmark-json">{JSON.stringify(result, null, 2)}</pre>
          </details>
        </div>
      )}
    </section>
  );
}

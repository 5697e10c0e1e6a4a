import { useEffect, useRef, useState } from 'react';
import type { AppContext } from '../App';
import { displayLabel } from '../lib/labels';
import { parseSeed } from '../lib/prng';

const DISPLAY_SIZE = 256;

export function GeneratePage({ context }: { context: AppContext }) {
  const generator = context.manifest.generator;
  const defaults = generator?.sampling;
  const [breed, setBreed] = useState(0);
  const [steps, setSteps] = useState(String(defaults?.num_inference_steps ?? 25));
  const [guidance, setGuidance] = useState(String(defaults?.guidance_scale ?? 4));
  const [seed, setSeed] = useState('0');
  const [progress, setProgress] = useState<{ done: number; total: number; label?: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<{ breed: string; seed: number; steps: number; guidance: number; ms: number; precision: string } | null>(null);
  const [generation, setGeneration] = useState(0);
  const canvasRef = useRef<HTMLCanvasElement>(null);

  useEffect(() => () => setProgress(null), []);
  if (!generator || !defaults) return <p role="alert">This model package has no generator.</p>;

  const stepsValue = Number(steps);
  const guidanceValue = Number(guidance);
  const seedValue = parseSeed(seed);
  const invalid =
    !Number.isInteger(stepsValue) || stepsValue < 1 || stepsValue > 200 ? 'Steps must be a whole number from 1 to 200.'
      : !Number.isFinite(guidanceValue) || guidanceValue < 0 || guidanceValue > 20 ? 'Guidance must be a number from 0 to 20.'
        : seedValue === null ? 'The seed must be a whole number from 0 to 4294967295.' : null;

  const run = async (event: React.FormEvent) => {
    event.preventDefault();
    if (invalid || seedValue === null) return;
    setError(null);
    setProgress({ done: 0, total: stepsValue });
    try {
      const result = await context.client.generate(breed, stepsValue, guidanceValue, seedValue, (d, total, label) =>
        setProgress({ done: d, total, label }));
      const canvas = canvasRef.current!;
      canvas.width = result.width;
      canvas.height = result.height;
      canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(result.rgba), result.width, result.height), 0, 0);
      setGeneration((g) => g + 1);
      setDone({ breed: generator.labels[breed], seed: seedValue, steps: stepsValue, guidance: guidanceValue, ms: result.total_ms, precision: result.precision });
    } catch (err) {
      setError(`Generation failed: ${(err as Error).message}`);
    } finally {
      setProgress(null);
    }
  };

  const download = () => {
    canvasRef.current?.toBlob((blob) => {
      if (!blob || !done) return;
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `tiny-cats-${done.breed.toLowerCase()}-seed${done.seed}-${done.steps}steps.png`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    }, 'image/png');
  };

  const busy = progress !== null;
  return (
    <section aria-labelledby="generate-title">
      <h2 id="generate-title">Generate a cat</h2>
      <p className="lead">
        A {generator.sample_size}×{generator.sample_size} image from a tiny diffusion transformer, denoised step by step
        ({generator.scheduler.class_name}, shift {String(generator.scheduler.config.shift)}) with classifier-free guidance.
      </p>
      <form className="controls" onSubmit={run}>
        <label>Breed
          <select value={breed} onChange={(e) => setBreed(Number(e.target.value))} data-testid="breed" disabled={busy}>
            {generator.labels.map((label, id) => <option key={label} value={id}>{displayLabel(label)}</option>)}
          </select>
        </label>
        <label>Steps
          <input type="number" inputMode="numeric" min={1} max={200} step={1} value={steps}
            onChange={(e) => setSteps(e.target.value)} data-testid="steps" disabled={busy} />
        </label>
        <label>Guidance
          <input type="number" inputMode="decimal" min={0} max={20} step={0.5} value={guidance}
            onChange={(e) => setGuidance(e.target.value)} data-testid="guidance" disabled={busy} />
        </label>
        <label>Seed
          <span className="seed-row">
            <input type="text" inputMode="numeric" value={seed} onChange={(e) => setSeed(e.target.value)}
              data-testid="seed" disabled={busy} aria-describedby="seed-note" />
            <button type="button" onClick={() => setSeed(String(Math.floor(Math.random() * 2 ** 32)))} disabled={busy}>
              Random
            </button>
          </span>
        </label>
        <button type="submit" className="primary" disabled={busy || invalid !== null} data-testid="generate">
          {busy ? 'Generating…' : 'Generate'}
        </button>
      </form>
      <p id="seed-note" className="note">
        Same seed, same image: the starting noise comes from a seeded mulberry32 generator with the Box-Muller
        transform, identical in every browser. Python draws its noise with torch, so its image for the same seed
        number differs. Defaults ({defaults.num_inference_steps} steps, guidance {defaults.guidance_scale}) come from the
        exported pipeline config.
      </p>
      {invalid && <p className="error" role="alert">{invalid}</p>}
      {error && <p className="error" role="alert" data-testid="generate-error">{error}</p>}
      <div className="progress-area" aria-live="polite">
        {progress && (
          <>
            <label htmlFor="denoise-progress">{progress.label === 'loading the generator' ? 'Loading the generator…' : `Denoising: step ${progress.done} of ${progress.total}`}</label>
            <progress id="denoise-progress" data-testid="progress" max={progress.total} value={progress.done} />
          </>
        )}
      </div>
      <figure className="canvas-figure" data-testid="result-figure" data-generation={generation}>
        <canvas ref={canvasRef} width={generator.sample_size} height={generator.sample_size} data-testid="canvas"
          style={{ width: DISPLAY_SIZE, height: DISPLAY_SIZE }} role="img"
          aria-label={done ? `Generated ${displayLabel(done.breed)}, seed ${done.seed}` : 'No image generated yet'} />
        <figcaption data-testid="generate-caption">
          {done
            ? `${displayLabel(done.breed)}, seed ${done.seed}, ${done.steps} steps, guidance ${done.guidance} (${done.precision}, ${(done.ms / 1000).toFixed(1)} s)`
            : 'Pick a breed and press Generate.'}
        </figcaption>
      </figure>
      <button type="button" onClick={download} disabled={!done || busy} data-testid="download">Download PNG</button>
    </section>
  );
}

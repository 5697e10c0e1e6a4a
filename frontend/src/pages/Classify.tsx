import { useCallback, useEffect, useRef, useState } from 'react';
import type { AppContext } from '../App';
import { decodeImage, ImageInputError } from '../lib/imageFile';
import { displayLabel, topK, type Prediction } from '../lib/labels';

interface Sample {
  file: string;
  breed: string;
  made_by: string;
}

interface Outcome {
  name: string;
  previewUrl: string;
  predictions: Prediction[];
  precision: string;
  ms: number;
}

export function ClassifyPage({ context }: { context: AppContext }) {
  const classifier = context.manifest.classifier;
  const [samples, setSamples] = useState<Sample[]>([]);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [finished, setFinished] = useState(0);
  const inputRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    fetch(`${import.meta.env.BASE_URL}samples/samples.json`)
      .then((r) => (r.ok ? r.json() : []))
      .then(setSamples)
      .catch(() => setSamples([]));
  }, []);

  const classify = useCallback(async (blob: Blob, name: string) => {
    if (!classifier) return;
    setBusy(true);
    setError(null);
    try {
      const image = await decodeImage(blob, name);
      const result = await context.client.classify(image.rgba, image.width, image.height);
      setOutcome({
        name, previewUrl: image.previewUrl, predictions: topK(result.probabilities, classifier.labels, 3),
        precision: result.precision, ms: result.inference_ms + result.preprocess_ms,
      });
    } catch (err) {
      setOutcome(null);
      setError(err instanceof ImageInputError ? err.message : `Could not classify ${name}: ${(err as Error).message}`);
    } finally {
      setFinished((n) => n + 1);
      setBusy(false);
      if (inputRef.current) inputRef.current.value = '';
    }
  }, [classifier, context.client]);

  if (!classifier) return <p role="alert">This model package has no classifier.</p>;

  const onDrop = (event: React.DragEvent) => {
    event.preventDefault();
    setDragging(false);
    const file = event.dataTransfer.files[0];
    if (file) void classify(file, file.name);
  };

  const pickSample = async (sample: Sample) => {
    const response = await fetch(`${import.meta.env.BASE_URL}samples/${sample.file}`);
    void classify(await response.blob(), sample.file);
  };

  const { size, image_mean, image_std } = classifier.preprocessing;
  return (
    <section aria-labelledby="classify-title">
      <h2 id="classify-title">Which cat breed is it?</h2>
      <p className="lead">
        Drop a photo or pick one. The classifier knows 12 cat breeds and <q>other</q> (anything that is not a cat).
        It resizes the image to {size}×{size} (bicubic, no crop) and normalises it with mean {image_mean.join(', ')} and
        std {image_std.join(', ')}, as in the exported processor config.
      </p>
      <div
        className={`dropzone${dragging ? ' dragging' : ''}`}
        onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        <label htmlFor="file-input">Choose an image, or drop one here</label>
        <input
          id="file-input" ref={inputRef} type="file" accept="image/*" data-testid="file-input" disabled={busy}
          onChange={(e) => { const f = e.target.files?.[0]; if (f) void classify(f, f.name); }}
        />
      </div>
      {samples.length > 0 && (
        <div className="samples">
          <p id="samples-label">Or try a sample made by the tiny-cats generator:</p>
          <ul aria-labelledby="samples-label">
            {samples.map((s) => (
              <li key={s.file}>
                <button type="button" onClick={() => void pickSample(s)} disabled={busy} title={s.made_by}>
                  <img src={`${import.meta.env.BASE_URL}samples/${s.file}`} alt="" width={64} height={64} />
                  <span>{displayLabel(s.breed)}</span>
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
      <div aria-live="polite" data-testid="classify-status" data-finished={finished}>
        {busy && <p role="status" data-testid="classify-busy">Classifying…</p>}
        {error && <p className="error" role="alert" data-testid="classify-error">{error}</p>}
        {outcome && !busy && (
          <div className="result" data-testid="classify-result">
            <img src={outcome.previewUrl} alt={`The image you chose: ${outcome.name}`} className="preview" />
            <div>
              <h3>Top 3 for <span className="filename">{outcome.name}</span></h3>
              <ol className="bars">
                {outcome.predictions.map((p) => (
                  <li key={p.id} data-testid="prediction" data-label={p.label} data-probability={p.probability.toFixed(6)}>
                    <span className="bar-label">{displayLabel(p.label)}</span>
                    <span className="bar-track" aria-hidden="true">
                      <span className="bar-fill" style={{ width: `${(p.probability * 100).toFixed(1)}%` }} />
                    </span>
                    <span className="bar-value">{(p.probability * 100).toFixed(1)}%</span>
                  </li>
                ))}
              </ol>
              <p className="meta">{outcome.precision} model, {outcome.ms.toFixed(0)} ms in the browser</p>
            </div>
          </div>
        )}
      </div>
    </section>
  );
}

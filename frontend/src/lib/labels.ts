/** Label helpers: names come from the manifest (the classifier's and the generator's label lists). */

/** Python's `tiny_cats.classifier.labels._normalize`: 'maine coon', 'Maine-Coon' and 'MAINE_COON' -> 'maine_coon'. */
export function normalizeLabel(name: string): string {
  return name.trim().replace(/[\s\-_]+/g, '_').toLowerCase();
}

/** 'British_Shorthair' -> 'British Shorthair' (for display only). */
export function displayLabel(name: string): string {
  return name.replace(/_/g, ' ');
}

/** Id of `name` in `labels` in any common spelling, or -1. */
export function labelId(labels: readonly string[], name: string): number {
  const wanted = normalizeLabel(name);
  return labels.findIndex((label) => normalizeLabel(label) === wanted);
}

/** Numerically stable softmax in float64. */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

export interface Prediction {
  id: number;
  label: string;
  probability: number;
}

/** The `k` most probable labels, highest first (ties: lower id first, like a stable argsort). */
export function topK(probabilities: readonly number[], labels: readonly string[], k = 3): Prediction[] {
  if (probabilities.length !== labels.length) {
    throw new Error(`model gives ${probabilities.length} scores but the manifest lists ${labels.length} labels`);
  }
  return probabilities
    .map((probability, id) => ({ id, label: labels[id], probability }))
    .sort((a, b) => b.probability - a.probability || a.id - b.id)
    .slice(0, k);
}

/**
 * Seeded initial noise for the generator.
 *
 * The Python pipeline draws its noise with torch's RNG, which a browser cannot reproduce, so the
 * browser uses its own documented generator: mulberry32 (32-bit state, by Tommy Ettinger) gives
 * uniforms, and the Box-Muller transform turns each pair into two standard normals. The same seed
 * gives the same noise, hence the same image, in every browser; it differs from Python's image for
 * the same seed number.
 */

/** mulberry32: returns a function giving uniform floats in [0, 1) with 2^-32 resolution. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` standard normal float32 values from `seed` (Box-Muller over mulberry32). */
export function gaussianNoise(seed: number, count: number): Float32Array {
  const uniform = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u1 = 1 - uniform(); // (0, 1]: log(u1) is finite
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** A seed from a text field: whole numbers 0..2^32-1 are used as they are. */
export function parseSeed(text: string): number | null {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return null;
  const value = Number(trimmed);
  return Number.isSafeInteger(value) && value <= 0xffffffff ? value : null;
}

import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import fixture from './fixtures/preprocessing.json';
import { preprocess, resizeBicubicRGB, type Preprocessing } from '../src/lib/preprocess';

/** The fixture script's made-up image: ((x*37 + y*91 + c*53 + x*y*7) % 256), optional alpha. */
function pattern(width: number, height: number, alpha = false): Uint8Array {
  const channels = alpha ? 4 : 3;
  const out = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) out[(y * width + x) * channels + c] = (x * 37 + y * 91 + c * 53 + x * y * 7) % 256;
      if (alpha) out[(y * width + x) * 4 + 3] = (x * 29 + y * 13) % 256;
    }
  }
  return out;
}

const processing = (size: number): Preprocessing => ({
  size, image_mean: fixture.processor.image_mean, image_std: fixture.processor.image_std,
  mode: 'squash', resample: 'bicubic', rescale_factor: 1 / 255, channel_order: 'RGB', layout: 'NCHW',
});

describe('preprocessing parity with TinyCatsImageProcessor (Pillow bicubic resize + normalise)', () => {
  for (const c of fixture.small) {
    it(`${c.width}x${c.height} -> ${c.size}x${c.size}: resized pixels equal Pillow's exactly`, () => {
      const resized = resizeBicubicRGB(pattern(c.width, c.height), c.width, c.height, c.size, c.size);
      expect(Array.from(resized)).toEqual(c.resized_uint8);
      if (c.pixel_values) {
        const pixels = preprocess({ data: pattern(c.width, c.height), width: c.width, height: c.height, channels: 3 }, processing(c.size));
        pixels.forEach((v, i) => expect(Math.abs(v - c.pixel_values![i])).toBeLessThan(1e-7));
      }
    });
  }

  it(`the bundled classifier's config (${fixture.processor.size} px) on a ${fixture.real.width}x${fixture.real.height} image`, () => {
    const { width, height } = fixture.real;
    const size = fixture.processor.size;
    const resized = resizeBicubicRGB(pattern(width, height), width, height, size, size);
    expect(createHash('sha256').update(resized).digest('hex')).toBe(fixture.real.resized_sha256);
    const pixels = preprocess({ data: pattern(width, height), width, height, channels: 3 }, processing(size));
    expect(pixels.length).toBe(3 * size * size);
    fixture.real.positions.forEach((p, i) => expect(Math.abs(pixels[p] - fixture.real.values[i])).toBeLessThan(1e-7));
    const sum = pixels.reduce((a, b) => a + b, 0);
    expect(Math.abs(sum - fixture.real.sum)).toBeLessThan(1e-2);
  });

  it('a portrait photo size (Pillow 13 resizes vertically first)', () => {
    const { width, height } = fixture.portrait;
    const size = fixture.processor.size;
    const resized = resizeBicubicRGB(pattern(width, height), width, height, size, size);
    expect(createHash('sha256').update(resized).digest('hex')).toBe(fixture.portrait.resized_sha256);
  });

  it('RGBA is composited on white like pil_to_rgb', () => {
    const { width, height } = fixture.rgba;
    const pixels = preprocess({ data: pattern(width, height, true), width, height, channels: 4 }, processing(fixture.processor.size));
    const sum = pixels.reduce((a, b) => a + b, 0);
    // Pillow's paste rounds a little differently from ours in rare pixels: allow a few 8-bit levels overall.
    expect(Math.abs(sum - fixture.rgba.sum)).toBeLessThan(0.5);
    fixture.rgba.first.forEach((v, i) => expect(Math.abs(pixels[i] - v)).toBeLessThan(2 / 127.5 + 1e-6));
  });

  it('refuses what it does not implement', () => {
    expect(() => preprocess({ data: pattern(4, 4), width: 4, height: 4, channels: 3 }, { ...processing(8), mode: 'crop' })).toThrow(/crop/);
  });
});

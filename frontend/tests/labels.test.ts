import { describe, expect, it } from 'vitest';
import fixture from './fixtures/labels.json';
import { displayLabel, labelId, softmax, topK } from '../src/lib/labels';
import { choosePrecision, resolveModelBase, validateManifest, type FileInfo } from '../src/lib/manifest';
import { pixelLimitMessage, precheckFile } from '../src/lib/imageFile';

describe('label mapping (tiny_cats.classifier.labels)', () => {
  it('spellings map to the same ids as label_to_id', () => {
    for (const [name, id] of Object.entries(fixture.label_to_id)) expect(labelId(fixture.labels, name)).toBe(id);
  });

  it('generator class ids are TinyDiTPipeline.get_label_ids', () => {
    for (const [breed, id] of Object.entries(fixture.generator_ids)) expect(labelId(fixture.cat_breeds, breed)).toBe(id);
  });

  it('the other label is last and dogs are not labels of their own', () => {
    expect(fixture.labels[fixture.labels.length - 1]).toBe(fixture.other_label);
    for (const dog of fixture.dog_breeds) expect(labelId(fixture.labels, dog)).toBe(-1);
  });

  it('softmax and top-3', () => {
    const p = softmax(fixture.softmax.logits);
    p.forEach((v, i) => expect(v).toBeCloseTo(fixture.softmax.probabilities[i], 8));
    const top = topK(p, ['a', 'b', 'c', 'd', 'e']);
    expect(top.map((t) => t.label)).toEqual(['d', 'a', 'c']);
    expect(() => topK(p, ['a'])).toThrow(/labels/);
    expect(displayLabel('British_Shorthair')).toBe('British Shorthair');
  });
});

describe('manifest and model base URL', () => {
  const page = 'http://127.0.0.1:4173/index.html';
  it('?model= switches the base URL', () => {
    expect(resolveModelBase('', page, '/models/')).toBe('http://127.0.0.1:4173/models/');
    expect(resolveModelBase('?model=/other', page, '/models/')).toBe('http://127.0.0.1:4173/other/');
    expect(resolveModelBase('?model=someone/tiny-cats-model', page, '/models/'))
      .toBe('https://huggingface.co/someone/tiny-cats-model/resolve/main/');
    expect(resolveModelBase('?model=https%3A%2F%2Fexample.org%2Fm%2F', page, '/models/')).toBe('https://example.org/m/');
  });

  it('precision choice falls back to the file present', () => {
    const file = {} as FileInfo;
    expect(choosePrecision({ files: { fp32: file } }, 'classifier')).toBe('fp32');
    expect(choosePrecision({ files: { fp32: file, int8: file } }, 'generator', '?generator=int8')).toBe('int8');
    expect(() => choosePrecision({ files: {} }, 'classifier')).toThrow();
  });

  it('validates manifests', () => {
    expect(() => validateManifest({ format_version: 2 })).toThrow(/format_version/);
  });
});

describe('file checks', () => {
  it('refuses empty, non-image and huge files', () => {
    expect(precheckFile('a.jpg', 0, 'image/jpeg')).toMatch(/empty/);
    expect(precheckFile('a.txt', 10, 'text/plain')).toMatch(/not an image/);
    expect(precheckFile('a.jpg', 80 * 1024 * 1024, 'image/jpeg')).toMatch(/too large/);
    expect(precheckFile('a.jpg', 100, 'image/jpeg')).toBeNull();
    expect(pixelLimitMessage('a.png', 10000, 10000)).toMatch(/limit/);
    expect(pixelLimitMessage('a.png', 100, 100)).toBeNull();
  });
});

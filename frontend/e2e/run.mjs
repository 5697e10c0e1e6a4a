#!/usr/bin/env node
/**
 * End-to-end tests of the built app in Debian's Chromium, driven by playwright-core (no browser download).
 *
 *   node e2e/run.mjs            (after `npm run build`; builds first if dist/ is missing)
 *
 * Global setup: the models come from `tiny-cats export` into TINY_CATS_EXPORT (default
 * $TMPDIR/tiny-cats-e2e-export), exported with ../.venv/bin/tiny-cats when its manifest is absent.
 * The app is served on 127.0.0.1 (scripts/serve.mjs: application/wasm, COOP/COEP) with the models
 * at /models/, opened as /?model=/models/. Real photos are read from ../shared/data/oxford-iiit-pet
 * (relative to the repository root) when present, never copied; otherwise made-up images are used.
 *
 * Screenshots and results go to frontend/test-results/ (git-ignored); e2e-summary.json holds each
 * test's outcome and, under "classified", the top 3 labels and probabilities each classify test saw.
 * Environment knobs:
 * CHROMIUM (default /usr/bin/chromium), E2E_BENCH_REPEATS (classifier repeats of the benchmark, 3-200, default 5),
 * E2E_BENCH_OUTPUT (also write the benchmark JSON there, e.g. ../benchmarks/browser_inference.json to commit it),
 * E2E_PETS_DIR (the photos folder; point it at a missing path to run the made-up-image flow).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { serve } from '../scripts/serve.mjs';

const frontend = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(frontend, '..');
const results = join(frontend, 'test-results');
const petDir = resolve(process.env.E2E_PETS_DIR ?? join(repo, '..', 'shared', 'data', 'oxford-iiit-pet'));
const exportDir = resolve(process.env.TINY_CATS_EXPORT ?? join(tmpdir(), 'tiny-cats-e2e-export'));
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const benchRepeats = Number(process.env.E2E_BENCH_REPEATS ?? 5);
if (!Number.isInteger(benchRepeats) || benchRepeats < 3 || benchRepeats > 200) {
  // the benchmark form's own limits (src/pages/Benchmark.tsx): outside them the browser refuses to submit
  console.error(`E2E_BENCH_REPEATS must be an integer from 3 to 200, got ${JSON.stringify(process.env.E2E_BENCH_REPEATS)}`);
  process.exit(2);
}
const benchOutput = process.env.E2E_BENCH_OUTPUT ? resolve(frontend, process.env.E2E_BENCH_OUTPUT) : null;
const labels = JSON.parse(readFileSync(join(frontend, 'tests', 'fixtures', 'labels.json'), 'utf8'));

// ------------------------------------------------------------------------------ global setup

function ensureExport() {
  if (existsSync(join(exportDir, 'onnx', 'manifest.json'))) return;
  const cli = join(repo, '.venv', 'bin', 'tiny-cats');
  console.log(`exporting the models to ${exportDir} ...`);
  const run = (extra) => spawnSync('nice', ['-n', '15', cli, 'export', '--output', exportDir, ...extra], { stdio: 'inherit', cwd: repo });
  if (run([]).status !== 0) {
    // Static int8 needs calibration photos; without them, export fp32 only.
    console.log('export with int8 failed; exporting fp32 only (--no-quantize)');
    if (run(['--no-quantize']).status !== 0) throw new Error('tiny-cats export failed');
  }
}

function ensureBuild() {
  if (existsSync(join(frontend, 'dist', 'index.html'))) return;
  console.log('dist/ missing: building');
  execFileSync('npm', ['run', 'build'], { cwd: frontend, stdio: 'inherit' });
}

// ------------------------------------------------------------------------------ made-up images

function crc32(buffer) {
  let c, crc = 0xffffffff;
  for (let n = 0; n < buffer.length; n++) {
    c = (crc ^ buffer[n]) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A PNG of `width` x `height` RGB pixels from `pixel(x, y) -> [r, g, b]`. */
function makePng(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * (width * 3 + 1) + 1 + x * 3);
  }
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** Real photos (cat breeds with their label, a dog) from the test split when the shared folder exists. */
function realPhotos() {
  const split = join(petDir, 'annotations', 'test-pet.txt');
  if (!existsSync(join(petDir, 'images')) || !existsSync(split)) return null;
  const names = readFileSync(split, 'utf8').split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
  const have = (n) => existsSync(join(petDir, 'images', `${n}.jpg`));
  const breedOf = (n) => n.replace(/_\d+$/, '');
  const cats = [];
  for (const breed of ['Abyssinian', 'Siamese']) {
    const name = names.find((n) => breedOf(n) === breed && have(n));
    if (name) cats.push({ name: `${name}.jpg`, label: breed });
  }
  const dogName = names.find((n) => breedOf(n) === 'beagle' && have(n)) ?? names.find((n) => labels.dog_breeds.includes(breedOf(n)) && have(n));
  if (!cats.length || !dogName) return null;
  return { cats, dog: { name: `${dogName}.jpg`, label: labels.other_label } };
}

// ------------------------------------------------------------------------------ tiny runner

const outcomes = [];
/** What each classify test saw: photo, expected label and the top 3 as shown (stored in e2e-summary.json). */
const classified = [];
async function test(name, fn) {
  const start = Date.now();
  try {
    await fn();
    outcomes.push({ name, ok: true, seconds: (Date.now() - start) / 1000 });
    console.log(`  ok   ${name} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
  } catch (err) {
    outcomes.push({ name, ok: false, seconds: (Date.now() - start) / 1000, error: String(err?.stack ?? err) });
    console.log(`  FAIL ${name}\n       ${String(err?.message ?? err).split('\n').join('\n       ')}`);
  }
}
function record(photo, expected, predictions) {
  classified.push({ photo, expected, top3: predictions.map(({ label, probability }) => ({ label, probability })) });
  console.log(`       ${predictions.map((p) => `${p.label} ${(p.probability * 100).toFixed(1)}%`).join(', ')}`);
}
function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// ------------------------------------------------------------------------------ page helpers

const finishedCount = (page) => page.getAttribute('[data-testid=classify-status]', 'data-finished');

async function uploadFile(page, name, buffer, mimeType) {
  page.__finishedBefore = await finishedCount(page);
  await page.setInputFiles('[data-testid=file-input]', { name, mimeType, buffer });
}

async function clickSample(page) {
  page.__finishedBefore = await finishedCount(page);
  await page.click('.samples button');
}

/** Waits until the classification started after `page.__finishedBefore` ended; returns the top 3 shown. */
async function waitClassified(page) {
  await page.waitForFunction((before) => {
    const status = document.querySelector('[data-testid=classify-status]');
    return status && status.getAttribute('data-finished') !== before && !document.querySelector('[data-testid=classify-busy]');
  }, page.__finishedBefore, { timeout: 120_000 });
  return page.$$eval('[data-testid=prediction]', (items) => items.map((li) => ({
    label: li.dataset.label, probability: Number(li.dataset.probability), text: li.textContent,
  })));
}

async function canvasPixels(page) {
  return page.$eval('[data-testid=canvas]', (canvas) => {
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    return Array.from(data);
  });
}

/** Generates with the form's current settings; returns { pixels, sawProgress }. */
async function generate(page, { breed, steps, seed }) {
  await page.selectOption('[data-testid=breed]', String(breed));
  await page.fill('[data-testid=steps]', String(steps));
  await page.fill('[data-testid=seed]', String(seed));
  await page.evaluate(() => {
    window.__sawProgress = false;
    const observer = new MutationObserver(() => {
      if (document.querySelector('[data-testid=progress]')) window.__sawProgress = true;
    });
    observer.observe(document.body, { childList: true, subtree: true });
    window.__progressObserver = observer;
  });
  const before = await page.getAttribute('[data-testid=result-figure]', 'data-generation');
  await page.click('[data-testid=generate]');
  await page.waitForFunction((previous) => {
    const error = document.querySelector('[data-testid=generate-error]');
    const generation = document.querySelector('[data-testid=result-figure]')?.getAttribute('data-generation');
    return error || (generation !== previous && !document.querySelector('[data-testid=progress]'));
  }, before, { timeout: 180_000 });
  const error = await page.$('[data-testid=generate-error]');
  if (error) throw new Error(await error.textContent());
  const sawProgress = await page.evaluate(() => { window.__progressObserver.disconnect(); return window.__sawProgress; });
  return { pixels: await canvasPixels(page), sawProgress };
}

function spread(pixels) {
  let min = 255, max = 0, sum = 0, sq = 0, n = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const v = pixels[i + c];
      min = Math.min(min, v); max = Math.max(max, v); sum += v; sq += v * v; n++;
    }
  }
  const mean = sum / n;
  return { min, max, std: Math.sqrt(sq / n - mean * mean) };
}

// ------------------------------------------------------------------------------ main

async function main() {
  ensureExport();
  ensureBuild();
  rmSync(results, { recursive: true, force: true });
  mkdirSync(results, { recursive: true });
  const { server, url } = await serve({ dist: join(frontend, 'dist'), models: exportDir, port: 0 });
  const appUrl = (hash) => `${url}?model=/models/#/${hash}`;
  const profile = mkdtempSync(join(tmpdir(), 'tiny-cats-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const external = [];
  const pageErrors = [];
  page.on('request', (r) => { if (!r.url().startsWith(url) && !/^(data|blob):/.test(r.url())) external.push(r.url()); });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  const photos = realPhotos();
  console.log(`app: ${appUrl('')}\nmodels: ${exportDir}\nphotos: ${photos ? petDir : 'absent: made-up images'}`);

  try {
    await page.goto(appUrl('classify'));
    await page.waitForSelector('[data-testid=file-input]', { timeout: 60_000 });

    await test('page is cross-origin isolated and loads ORT from the app (wasm threads)', async () => {
      assert(await page.evaluate(() => crossOriginIsolated), 'not cross-origin isolated');
      await page.waitForFunction(() => /wasm|webgpu/.test(document.querySelector('footer')?.textContent ?? ''), null, { timeout: 60_000 });
    });

    if (photos) {
      for (const cat of photos.cats) {
        await test(`classify a real cat photo (${cat.name}): ${cat.label} in the top 3 with its probability`, async () => {
          await uploadFile(page, cat.name, readFileSync(join(petDir, 'images', cat.name)), 'image/jpeg');
          const predictions = await waitClassified(page);
          record(cat.name, cat.label, predictions);
          assert(predictions.length === 3, `expected 3 predictions, got ${predictions.length}`);
          const hit = predictions.find((p) => p.label === cat.label);
          assert(hit, `${cat.label} not in the top 3`);
          assert(hit.text.includes(`${(hit.probability * 100).toFixed(1)}%`), 'probability not shown');
        });
      }
      await page.screenshot({ path: join(results, 'classify.png'), fullPage: true });
      await test(`classify a real dog photo (${photos.dog.name}): other`, async () => {
        await uploadFile(page, photos.dog.name, readFileSync(join(petDir, 'images', photos.dog.name)), 'image/jpeg');
        const predictions = await waitClassified(page);
        record(photos.dog.name, photos.dog.label, predictions);
        assert(predictions[0]?.label === labels.other_label, `top label is ${predictions[0]?.label}, not other`);
      });
    } else {
      await test('classify made-up images (no photos folder): three labels with probabilities', async () => {
        const images = [
          makePng(300, 200, (x, y) => [(x * 3) % 256, (y * 5) % 256, ((x + y) * 2) % 256]),
          makePng(120, 180, (x, y) => ((x >> 4) + (y >> 4)) % 2 ? [230, 180, 120] : [40, 30, 30]),
        ];
        for (const [i, png] of images.entries()) {
          await uploadFile(page, `made-up-${i}.png`, png, 'image/png');
          const predictions = await waitClassified(page);
          record(`made-up-${i}.png`, null, predictions);
          assert(predictions.length === 3, 'expected 3 predictions');
          const total = predictions.reduce((a, p) => a + p.probability, 0);
          assert(total > 0 && total <= 1.0001, `bad probabilities ${total}`);
          assert(predictions.every((p) => labels.labels.includes(p.label)), 'unknown label');
        }
      });
      await page.screenshot({ path: join(results, 'classify.png'), fullPage: true });
    }

    await test('a text file named .jpg shows the error message, and the page keeps working', async () => {
      await uploadFile(page, 'not-a-photo.jpg', Buffer.from('this is plain text, not a JPEG\n'), 'image/jpeg');
      await waitClassified(page);
      const text = await page.textContent('[data-testid=classify-error]');
      assert(/not-a-photo\.jpg/.test(text) && /not an image/.test(text), `unexpected message: ${text}`);
      await page.screenshot({ path: join(results, 'classify-error.png'), fullPage: true });
    });

    await test('a 0-byte file shows the error message, and the page keeps working', async () => {
      await uploadFile(page, 'empty.jpg', Buffer.alloc(0), 'image/jpeg');
      await waitClassified(page);
      const text = await page.textContent('[data-testid=classify-error]');
      assert(/empty\.jpg/.test(text) && /empty \(0 bytes\)/.test(text), `unexpected message: ${text}`);
      await clickSample(page);
      const predictions = await waitClassified(page);
      assert(predictions.length === 3, 'the page stopped working after the bad files');
      assert(!(await page.$('[data-testid=classify-error]')), 'error message still shown');
    });

    await page.goto(appUrl('generate'));
    await page.waitForSelector('[data-testid=breed]', { timeout: 60_000 });
    const breeds = await page.$$eval('[data-testid=breed] option', (options) => options.map((o) => o.textContent));
    const steps = 4;
    await test(`generate each of the ${breeds.length} breeds (${steps} steps): a non-blank canvas and a progress bar`, async () => {
      assert(breeds.length === labels.cat_breeds.length, `${breeds.length} breeds in the picker`);
      const sizes = await page.$eval('[data-testid=canvas]', (c) => [c.width, c.clientWidth]);
      assert(sizes[1] > sizes[0], `canvas shown at ${sizes[1]} px, not larger than ${sizes[0]}`);
      for (let breed = 0; breed < breeds.length; breed++) {
        const { pixels, sawProgress } = await generate(page, { breed, steps, seed: 100 + breed });
        const s = spread(pixels);
        assert(s.std > 5 && s.max - s.min > 30, `${breeds[breed]}: canvas looks blank (std ${s.std.toFixed(1)})`);
        assert(sawProgress, `${breeds[breed]}: progress bar never shown`);
      }
    });

    await test('the same seed twice gives identical pixels (and another seed does not)', async () => {
      const a = await generate(page, { breed: 3, steps, seed: 4242 });
      const b = await generate(page, { breed: 3, steps, seed: 4242 });
      const c = await generate(page, { breed: 3, steps, seed: 4243 });
      const hash = (p) => createHash('sha256').update(Buffer.from(p)).digest('hex');
      assert(hash(a.pixels) === hash(b.pixels), 'same seed, different pixels');
      assert(hash(a.pixels) !== hash(c.pixels), 'different seeds, same pixels');
    });

    await test('download as PNG', async () => {
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.click('[data-testid=download]')]);
      const path = join(results, download.suggestedFilename());
      await download.saveAs(path);
      assert(readFileSync(path).subarray(1, 4).toString() === 'PNG', 'not a PNG');
    });
    // A default-settings image for the screenshot.
    const manifest = JSON.parse(readFileSync(join(exportDir, 'onnx', 'manifest.json'), 'utf8'));
    await generate(page, { breed: 10, steps: manifest.generator.sampling.num_inference_steps, seed: 7 });
    await page.screenshot({ path: join(results, 'generate.png'), fullPage: true });

    await page.goto(appUrl('benchmark'));
    await page.waitForSelector('[data-testid=run-benchmark]', { timeout: 60_000 });
    let benchmark = null;
    await test('benchmark page shows numbers for both models', async () => {
      await page.fill('[data-testid=repeats]', String(benchRepeats));
      await page.fill('[data-testid=bench-steps]', '8');
      await page.click('[data-testid=run-benchmark]');
      await page.waitForSelector('[data-testid=benchmark-result]', { timeout: 540_000 });
      benchmark = JSON.parse(await page.$eval('[data-testid=benchmark-json]', (el) => el.textContent));
      const classifier = await page.$$eval('[data-testid=classifier-row]', (rows) => rows.map((r) => Number(r.dataset.p50)));
      const generator = await page.$$eval('[data-testid=generator-row]', (rows) => rows.map((r) => Number(r.dataset.p50)));
      assert(classifier.length >= 2 && classifier.every((v) => v > 0), `classifier rows: ${classifier}`);
      assert(generator.length >= 1 && generator.every((v) => v > 0), `generator rows: ${generator}`);
      writeFileSync(join(results, 'browser_inference.json'), JSON.stringify(benchmark, null, 2));
      if (benchOutput) writeFileSync(benchOutput, JSON.stringify(benchmark, null, 2) + '\n');
    });
    await page.screenshot({ path: join(results, 'benchmark.png'), fullPage: true });

    await test('phone-width layout (390 px): no horizontal scrolling on any page', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      for (const name of ['classify', 'generate', 'benchmark']) {
        await page.goto(appUrl(name));
        await page.waitForSelector('main h2', { timeout: 60_000 });
        if (name === 'classify') {
          await page.waitForSelector('.samples button');
          await clickSample(page);
          await waitClassified(page);
        }
        if (name === 'generate') await generate(page, { breed: 6, steps, seed: 11 });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        await page.screenshot({ path: join(results, `${name}-phone.png`), fullPage: true });
        assert(overflow <= 1, `${name}: ${overflow}px wider than the screen`);
      }
    });

    await test('keyboard: the controls are reachable with Tab', async () => {
      await page.setViewportSize({ width: 1100, height: 900 });
      await page.goto(appUrl('generate'));
      await page.waitForSelector('[data-testid=breed]');
      const seen = new Set();
      for (let i = 0; i < 16; i++) {
        await page.keyboard.press('Tab');
        seen.add(await page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.tagName));
      }
      for (const id of ['breed', 'steps', 'guidance', 'seed', 'generate']) assert(seen.has(id), `${id} not reachable by Tab`);
    });

    await test('nothing was fetched from outside the local server (no CDN), no page errors', async () => {
      assert(external.length === 0, `external requests: ${external.slice(0, 5).join(', ')}`);
      assert(pageErrors.length === 0, `page errors: ${pageErrors.slice(0, 5).join(' | ')}`);
    });
  } finally {
    await context.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }

  const passed = outcomes.filter((o) => o.ok).length;
  writeFileSync(join(results, 'e2e-summary.json'), JSON.stringify({ passed, failed: outcomes.length - passed, outcomes, classified }, null, 2));
  console.log(`\n${passed} passed, ${outcomes.length - passed} failed (screenshots and results in ${results})`);
  process.exit(passed === outcomes.length ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import { defineConfig, defaultClientConditions, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ortDist = join(here, 'node_modules', 'onnxruntime-web', 'dist');
/** ONNX Runtime Web's runtime files (wasm + its Emscripten glue, JSEP build: wasm and WebGPU), bundled under ort/. */
export const ORT_FILES = ['ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];
/** Headers that make the page cross-origin isolated, which wasm threads (SharedArrayBuffer) need. */
export const ISOLATION_HEADERS = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

function ortRuntimeFiles(): Plugin {
  return {
    name: 'tiny-cats-ort-files',
    generateBundle() {
      for (const file of ORT_FILES) {
        this.emitFile({ type: 'asset', fileName: `ort/${file}`, source: readFileSync(join(ortDist, file)) });
      }
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const match = req.url?.match(/\/ort\/([\w.-]+)$/);
        if (!match || !ORT_FILES.includes(match[1])) return next();
        for (const [k, v] of Object.entries(ISOLATION_HEADERS)) res.setHeader(k, v);
        res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
        res.setHeader('Content-Type', match[1].endsWith('.wasm') ? 'application/wasm' : 'text/javascript');
        createReadStream(join(ortDist, match[1])).pipe(res);
      });
    },
  };
}

/**
 * In `vite dev`, /models/onnx/* serves the onnx/ folder of a `tiny-cats export --output DIR` package
 * (TINY_CATS_MODELS=DIR; default the repository root, where `tiny-cats export --output .` writes).
 */
function localModels(): Plugin {
  const root = resolve(process.env.TINY_CATS_MODELS ?? join(here, '..'));
  return {
    name: 'tiny-cats-local-models',
    configureServer(server) {
      server.middlewares.use('/models', (req, res, next) => {
        const path = normalize(join(root, decodeURIComponent((req.url ?? '/').split('?')[0])));
        if (!path.startsWith(join(root, 'onnx') + sep) || !existsSync(path) || !statSync(path).isFile()) return next();
        res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
        res.setHeader('Content-Type', path.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        createReadStream(path).pipe(res);
      });
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [react(), ortRuntimeFiles(), localModels()],
  // ORT's build that loads its wasm + glue from env.wasm.wasmPaths (our bundled ort/ folder), not a CDN.
  resolve: { conditions: ['onnxruntime-web-use-extern-wasm', ...defaultClientConditions] },
  worker: { format: 'es' },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: { target: 'es2022', chunkSizeWarningLimit: 1024 },
  server: { headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
});

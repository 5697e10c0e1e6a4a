#!/usr/bin/env node
/**
 * A small static server for the built app: `node scripts/serve.mjs [--port 4173] [--models DIR]`.
 *
 * Serves dist/ at / and, with --models, a `tiny-cats export` folder at /models/ (so the page works
 * with `?model=/models/`). Sends `.wasm` as application/wasm and the COOP/COEP headers that make the
 * page cross-origin isolated, which ONNX Runtime Web needs for wasm threads. Binds 127.0.0.1 only.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.png': 'image/png',
  '.jpg': 'image/jpeg', '.svg': 'image/svg+xml', '.map': 'application/json', '.txt': 'text/plain',
};

function send(res, root, relative) {
  const path = normalize(join(root, relative));
  if (path !== root && !path.startsWith(root + sep)) return false;
  if (!existsSync(path) || !statSync(path).isFile()) return false;
  res.writeHead(200, {
    'Content-Type': MIME[extname(path)] ?? 'application/octet-stream',
    'Content-Length': statSync(path).size,
    'Cache-Control': 'no-cache',
  });
  createReadStream(path).pipe(res);
  return true;
}

/** Starts the server; resolves to { server, url }. */
export function serve({ dist = join(here, '..', 'dist'), models = null, port = 4173, host = '127.0.0.1' } = {}) {
  const distRoot = resolve(dist);
  const modelsRoot = models ? resolve(models) : null;
  const server = createServer((req, res) => {
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end('bad request');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end('method not allowed');
      return;
    }
    if (modelsRoot && path.startsWith('/models/') && send(res, modelsRoot, path.slice('/models/'.length))) return;
    if (send(res, distRoot, path === '/' ? 'index.html' : path.slice(1))) return;
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${path}`);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolvePromise({ server, url: `http://${host}:${address.port}/` });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const value = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const { url } = await serve({
    dist: value('--dist', undefined), models: value('--models', process.env.TINY_CATS_MODELS ?? null),
    port: Number(value('--port', 4173)),
  });
  console.log(`serving ${url}${value('--models', process.env.TINY_CATS_MODELS) ? ` (models at ${url}models/, open ${url}?model=/models/)` : ''}`);
}

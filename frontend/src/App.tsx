import { useEffect, useMemo, useState } from 'react';
import { defaultModelBase, fetchManifest, resolveModelBase, type Manifest } from './lib/manifest';
import { InferenceClient } from './lib/workerClient';
import type { BackendInfo } from './worker/protocol';
import { ClassifyPage } from './pages/Classify';
import { GeneratePage } from './pages/Generate';
import { BenchmarkPage } from './pages/Benchmark';

const PAGES = [
  { id: 'classify', title: 'Classify' },
  { id: 'generate', title: 'Generate' },
  { id: 'benchmark', title: 'Benchmark' },
] as const;
type PageId = (typeof PAGES)[number]['id'];

function pageFromHash(): PageId {
  const id = window.location.hash.replace(/^#\/?/, '');
  return (PAGES.find((p) => p.id === id)?.id ?? 'classify') as PageId;
}

export interface AppContext {
  manifest: Manifest;
  client: InferenceClient;
  base: string;
  info: BackendInfo | null;
}

export function App() {
  const [page, setPage] = useState<PageId>(pageFromHash);
  const base = useMemo(
    () => resolveModelBase(window.location.search, window.location.href, defaultModelBase(import.meta.env)),
    [],
  );
  const [context, setContext] = useState<AppContext | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    let cancelled = false;
    fetchManifest(base)
      .then((manifest) => {
        if (cancelled) return;
        const client = new InferenceClient(base, manifest);
        setContext({ manifest, client, base, info: null });
        client.ready
          .then((info) => !cancelled && setContext({ manifest, client, base, info }))
          .catch((err: Error) => !cancelled && setError(err.message));
      })
      .catch((err: Error) => !cancelled && setError(err.message));
    return () => {
      cancelled = true;
    };
  }, [base]);

  useEffect(() => {
    document.title = `${PAGES.find((p) => p.id === page)?.title} · tiny-cats in the browser`;
  }, [page]);

  return (
    <div className="app">
      <a className="skip" href="#main">Skip to content</a>
      <header>
        <h1>tiny-cats <span>in your browser</span></h1>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} aria-current={p.id === page ? 'page' : undefined}>{p.title}</a>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {error ? (
          <div className="error" role="alert" data-testid="load-error">
            <p><strong>The models could not be loaded.</strong> {error}</p>
            <p>Model files come from <code>{base}</code>. Point <code>?model=</code> at a <code>tiny-cats export</code> folder
              served over HTTP or at a Hub repo id.</p>
          </div>
        ) : !context ? (
          <p role="status">Loading the model manifest from <code>{base}</code>…</p>
        ) : page === 'classify' ? (
          <ClassifyPage context={context} />
        ) : page === 'generate' ? (
          <GeneratePage context={context} />
        ) : (
          <BenchmarkPage context={context} />
        )}
      </main>
      <footer>
        <p>
          Everything runs on this device with ONNX Runtime Web
          {context?.info ? ` (${context.info.backend}, ${context.info.num_threads} thread${context.info.num_threads > 1 ? 's' : ''})` : ''}.
          Models: <code data-testid="model-base">{base}</code>
        </p>
      </footer>
    </div>
  );
}

/** The page's shell: header, navigation, the token control, and the view the URL names. */
import { render } from 'preact';
import { useState } from 'preact/hooks';
import './style.css';
import { getToken } from './api.ts';
import { href, onLinkClick, useRoute } from './route.ts';
import type { Route } from './route.ts';
import { TokenForm } from './ui.tsx';
import { ClustersView, SnapshotsView } from './views/clusters.tsx';
import { TraceView } from './views/trace.tsx';
import { DiffView } from './views/diff.tsx';
import { AuditView, RulesView } from './views/audit.tsx';

function View({ route }: { route: Route }) {
  const q = route.query;
  switch (route.view) {
    case 'clusters':
      return <ClustersView />;
    case 'snapshots':
      return <SnapshotsView cluster={route.cluster!} after={q.get('after')} />;
    case 'trace':
      return <TraceView query={q} />;
    case 'diff':
      return <DiffView query={q} />;
    case 'audit':
      return <AuditView query={q} />;
    case 'rules':
      return <RulesView query={q} />;
    default:
      return (
        <section>
          <h1>Not a page</h1>
          <p>Nothing is shown at this address. <a href={href('')}>See the clusters</a>.</p>
        </section>
      );
  }
}

const NAV: ReadonlyArray<[string, string, Route['view'][]]> = [
  ['Clusters', '', ['clusters', 'snapshots']],
  ['Trace', 'trace', ['trace']],
  ['Diff', 'diff', ['diff']],
  ['Audit', 'audit', ['audit', 'rules']],
];

function App() {
  const route = useRoute();
  const [tokenOpen, setTokenOpen] = useState(false);
  // Carry the snapshot being looked at from one view to the next.
  const snapshot = route.query.get('snapshot') ?? route.query.get('to') ?? (route.cluster ? `${route.cluster}@latest` : null);
  return (
    <div class="shell" onClick={(e) => onLinkClick(e)}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href={href('')}>svcpath</a>
        <nav aria-label="Views">
          {NAV.map(([label, path, views]) => (
            <a href={path === '' ? href('') : href(path, snapshot ? (path === 'diff' ? { to: snapshot } : { snapshot }) : {})} aria-current={views.includes(route.view) ? 'page' : undefined}>{label}</a>
          ))}
        </nav>
        <div class="token">
          <button type="button" aria-expanded={tokenOpen} onClick={() => setTokenOpen(!tokenOpen)}>{getToken() ? 'Token ✓' : 'Token'}</button>
          {tokenOpen && <div class="token-pop"><TokenForm onDone={() => setTokenOpen(false)} /></div>}
        </div>
      </header>
      <main id="main">
        <View route={route} />
      </main>
    </div>
  );
}

const root = document.getElementById('app')!;
// The placeholder text is not Preact's to diff against.
root.textContent = '';
render(<App />, root);

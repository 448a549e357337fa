/**
 * The view is its URL: `/ui/` (clusters), `/ui/clusters/NAME` (its snapshots), `/ui/trace`,
 * `/ui/diff`, `/ui/audit` and `/ui/rules`, with everything that picks what is shown in the query
 * (snapshot as `cluster@version`, the packet or Service, the node). Reloading or sharing the URL
 * gives the same view; the page changes it with history.pushState.
 */
import { useEffect, useState } from 'preact/hooks';

export type ViewName = 'clusters' | 'snapshots' | 'trace' | 'diff' | 'audit' | 'rules' | 'missing';

export interface Route {
  readonly view: ViewName;
  /** The cluster named in the path (snapshots view). */
  readonly cluster?: string;
  readonly query: URLSearchParams;
}

export function parseRoute(url: URL): Route {
  const rest = url.pathname.replace(/^\/ui\/?/, '');
  const query = url.searchParams;
  const parts = rest.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { view: 'clusters', query };
  if (parts[0] === 'clusters' && parts.length === 2) return { view: 'snapshots', cluster: parts[1], query };
  if (parts.length === 1 && (['trace', 'diff', 'audit', 'rules'] as const).includes(parts[0] as 'trace')) return { view: parts[0] as ViewName, query };
  return { view: 'missing', query };
}

/** The URL of a view: `path` under /ui/, query parameters without the empty ones. */
export function href(path: string, query: Record<string, string | number | undefined | null> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return `/ui/${path}${qs ? `?${qs}` : ''}`;
}

const CHANGE = 'svcpath:navigate';

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.dispatchEvent(new Event(CHANGE));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(new URL(location.href)));
  useEffect(() => {
    const update = () => setRoute(parseRoute(new URL(location.href)));
    window.addEventListener('popstate', update);
    window.addEventListener(CHANGE, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(CHANGE, update);
    };
  }, []);
  return route;
}

/** Follows same-page links with pushState (a modified click opens a tab as usual). */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a || a.target || a.origin !== location.origin || !a.pathname.startsWith('/ui/')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}

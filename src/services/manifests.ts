/**
 * A syntax check of uploaded manifests (`kubectl get … -o json` or `-o yaml`), so that a
 * malformed upload is refused with the line and column before anything is stored.
 */
import { parseAllDocuments } from 'yaml';
import { AppError } from '../app-error.ts';
import { EngineError } from '../engine/index.ts';
import { clipMessage } from '../engine/errors.ts';
import { checkManifestsShape, DEFAULT_LIMITS, lineAt } from './limits.ts';
import type { Limits } from './limits.ts';

/** yaml's own bound on alias expansion (its default, stated): beyond it toJS refuses the document. */
const MAX_ALIAS_COUNT = 100;

export type ManifestLimits = Pick<Limits, 'manifestsMaxBytes' | 'manifestsMaxDepth' | 'manifestsMaxValues'>;

/** A located MANIFEST_SYNTAX error; the engine error bounds the quoted line and adds the excerpt. */
function syntaxAt(text: string, offset: number, message: string): AppError {
  const at = lineAt(text, offset);
  return AppError.fromEngine(new EngineError('MANIFEST_SYNTAX', message, at), { part: 'manifests' }, 'manifests: ');
}

/** Splits concatenated JSON values (`kubectl get a -o json; kubectl get b -o json`) and parses each. */
function parseJsonValues(text: string): unknown[] {
  const values: unknown[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i >= text.length) break;
    const start = i;
    let depth = 0;
    let inString = false;
    for (; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) {
          i++;
          break;
        }
      }
    }
    const chunk = text.slice(start, i);
    try {
      values.push(JSON.parse(chunk));
    } catch (e) {
      const m = /position (\d+)/.exec((e as Error).message);
      const at = start + (m ? Number(m[1]) : chunk.length);
      throw syntaxAt(text, at, `invalid JSON: ${(e as Error).message.replace(/ in JSON at position \d+.*$/s, '')}`);
    }
  }
  return values;
}

/**
 * Parses manifests as JSON values or YAML documents; throws a located MANIFEST_SYNTAX error.
 * Their size, nesting and number of values are checked against `limits` first (AppError VALIDATION).
 */
export function readManifestDocuments(text: string, limits: ManifestLimits = DEFAULT_LIMITS): unknown[] {
  checkManifestsShape(text, limits);
  return parseManifests(text);
}

function parseManifests(text: string): unknown[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) return parseJsonValues(text);
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) {
    const err = d.errors[0];
    if (err) {
      throw syntaxAt(text, err.pos[0], `invalid YAML: ${err.message.split('\n')[0]}`);
    }
  }
  return list.map((d, i) => {
    try {
      return d.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      // yaml refuses aliases that expand too much ("billion laughs") and aliases to no anchor.
      const message = e instanceof Error ? e.message : String(e);
      if (/alias count/i.test(message)) {
        throw new AppError('VALIDATION', `manifests: document ${i + 1}: YAML aliases expand too much (a resource exhaustion attack?)`, { part: 'manifests', document: i + 1 });
      }
      throw new AppError('MANIFEST_SYNTAX', `manifests: document ${i + 1}: invalid YAML: ${clipMessage(message)}`, { part: 'manifests', document: i + 1 });
    }
  });
}

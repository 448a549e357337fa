/**
 * A syntax check of uploaded manifests (`kubectl get … -o json` or `-o yaml`), so that a
 * malformed upload is refused with the line and column before anything is stored.
 */
import { parseAllDocuments } from 'yaml';
import { AppError } from '../app-error.ts';

function location(text: string, offset: number): { line: number; column: number; text: string } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  const end = text.indexOf('\n', start);
  return { line, column: offset - start + 1, text: text.slice(start, end < 0 ? text.length : end).replace(/\r$/, '') };
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
      const loc = location(text, at);
      throw new AppError('MANIFEST_SYNTAX', `manifests: invalid JSON: ${(e as Error).message.replace(/ in JSON at position \d+.*$/, '')}`, { ...loc, part: 'manifests' });
    }
  }
  return values;
}

/** Parses manifests as JSON values or YAML documents; throws a located MANIFEST_SYNTAX error. */
export function readManifestDocuments(text: string): unknown[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) return parseJsonValues(text);
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) {
    const err = d.errors[0];
    if (err) {
      const loc = location(text, err.pos[0]);
      throw new AppError('MANIFEST_SYNTAX', `manifests: invalid YAML: ${err.message.split('\n')[0]}`, { ...loc, part: 'manifests' });
    }
  }
  return list.map((d) => d.toJS());
}

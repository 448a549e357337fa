/**
 * What people paste is not always what iptables-save printed: a system-log prefix on every line,
 * a UTF-8 byte order mark, a rule wrapped by a terminal (onto the next line, or padded with blanks
 * to the terminal's width inside one line). These are undone here, each with a warning that says
 * what was changed and where. The text keeps its lines: a line joined onto the one above is left
 * blank, so every line number the parser reports is still the pasted text's.
 */
import type { Diagnostic } from './ast.ts';

/** `Nov 14 11:06:11 host kube-proxy[12085]: ` or `2024-05-01T10:00:00.123+00:00 host proc[1]: `. */
const LOG_PREFIX = /^\s*(?:[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) \S+ [^:\s]+(?:\[\d+\])?: /;
/** How a line of iptables-save or iptables -S output starts. */
const LINE_START = /^\s*(?:\[\d+:\d+\]\s+)?(?:-[APNIXFDRZ]\s|--(?:append|insert|new-chain|policy|delete-chain|flush)\s|:|\*|#|COMMIT\b)/;
/** Some line that starts neither a line of the dump nor is blank (a wrapped rule's rest, or anything else). */
const NOT_A_LINE_START = /^(?![ \t]*(?:\[\d+:\d+\][ \t]+)?(?:-[APNIXFDRZ][ \t]|--(?:append|insert|new-chain|policy|delete-chain|flush)[ \t]|[:*#]|COMMIT\b|\r?$))/m;
const RULE_START = /^\s*(?:\[\d+:\d+\]\s+)?(?:-[AI]|--append|--insert)\s/;
/** Blanks a terminal pads a wrapped line with: iptables-save never prints more than one in a row. */
const PADDING = 8;
/** Warnings of one kind listed one by one; past that, counted. */
const LISTED = 20;

export interface Repaired {
  readonly text: string;
  readonly diagnostics: Diagnostic[];
}

/** Undoes the changes pasting makes to a dump; `text` unchanged (and no diagnostics) when there were none. */
export function repairDump(text: string): Repaired {
  const diagnostics: Diagnostic[] = [];
  let source = text;
  if (source.charCodeAt(0) === 0xfeff) {
    source = source.slice(1);
    diagnostics.push({ severity: 'warning', code: 'INPUT_REPAIRED', line: 1, column: 1, message: 'removed a UTF-8 byte order mark before the first line' });
  }
  // Whole-text checks first: a clean 40 MB dump is not split into lines for nothing.
  const prefixed = LOG_PREFIX.test(source.slice(0, 4096).replace(/^\s*\n/, ''));
  const padded = source.includes(' '.repeat(PADDING));
  const wrapped = NOT_A_LINE_START.test(source);
  if (!prefixed && !padded && !wrapped) return diagnostics.length === 0 ? { text, diagnostics } : { text: source, diagnostics };
  const lines = source.split('\n');
  if (prefixed) stripLogPrefixes(lines, diagnostics);
  if (padded) joinPaddedWraps(lines, diagnostics);
  if (wrapped || prefixed) joinWrappedLines(lines, diagnostics);
  if (diagnostics.length === 0) return { text, diagnostics };
  return { text: lines.join('\n'), diagnostics };
}

/** A system-log prefix on most lines is taken off every line that has it. */
function stripLogPrefixes(lines: string[], diagnostics: Diagnostic[]): void {
  let content = 0;
  let prefixed = 0;
  for (const l of lines) {
    if (l.trim() === '') continue;
    content++;
    if (LOG_PREFIX.test(l)) prefixed++;
  }
  if (prefixed === 0 || prefixed * 2 < content) return;
  let first = -1;
  let example = '';
  lines.forEach((l, i) => {
    const m = LOG_PREFIX.exec(l);
    if (!m) return;
    if (first < 0) {
      first = i;
      example = m[0].trim();
    }
    lines[i] = l.slice(m[0].length);
  });
  diagnostics.push({
    severity: 'warning', code: 'INPUT_REPAIRED', line: first + 1, column: 1,
    message: `removed the system-log prefix (such as '${example}') from ${prefixed} line${prefixed === 1 ? '' : 's'}`,
  });
}

/** Where a run of PADDING or more blanks outside quotes is followed by more text, or -1. */
function paddingAt(line: string): { at: number; length: number } | null {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && quoted) {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (quoted || c !== ' ') continue;
    let j = i;
    while (j < line.length && (line[j] === ' ' || line[j] === '\t')) j++;
    if (j - i >= PADDING && j < line.length && line[j] !== '\r') return { at: i, length: j - i };
    i = j - 1;
  }
  return null;
}

/** A rule a terminal wrapped and padded to its width within one line: the padding is taken out. */
function joinPaddedWraps(lines: string[], diagnostics: Diagnostic[]): void {
  let count = 0;
  lines.forEach((l, i) => {
    if (!RULE_START.test(l)) return;
    let line = l;
    let pad = paddingAt(line);
    const first = pad;
    while (pad) {
      line = line.slice(0, pad.at) + line.slice(pad.at + pad.length);
      pad = paddingAt(line);
    }
    if (!first) return;
    count++;
    if (count <= LISTED) {
      const cut = line.slice(Math.max(0, first.at - 12), first.at + 12);
      diagnostics.push({
        severity: 'warning', code: 'INPUT_REPAIRED', line: i + 1, column: first.at + 1, text: l,
        message: `the rule looks wrapped by a terminal: removed ${first.length} blanks at column ${first.at + 1}, which made '…${cut}…'`,
      });
    }
    lines[i] = line;
  });
  if (count > LISTED) diagnostics.push({ severity: 'warning', code: 'INPUT_REPAIRED', message: `${count - LISTED} more rules had terminal padding removed` });
}

/** A line that cannot start a line of the dump, after a rule, is the rest of that rule. */
function joinWrappedLines(lines: string[], diagnostics: Diagnostic[]): void {
  let count = 0;
  let ruleAt = -1;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].replace(/\r$/, '');
    if (l.trim() === '') {
      ruleAt = -1;
      continue;
    }
    if (LINE_START.test(l)) {
      ruleAt = RULE_START.test(l) ? i : -1;
      continue;
    }
    // A log line among the rules is not a rule's end: it is refused where it stands.
    if (ruleAt < 0 || LOG_PREFIX.test(l)) continue;
    const above = lines[ruleAt].replace(/\r$/, '');
    // A wrap at a blank may have lost it; an option never follows another without one.
    const rest = l.trimStart();
    const glue = rest.startsWith('-') && !above.endsWith(' ') ? ' ' : '';
    lines[ruleAt] = above + glue + rest;
    lines[i] = '';
    count++;
    if (count <= LISTED) {
      diagnostics.push({
        severity: 'warning', code: 'INPUT_REPAIRED', line: i + 1, column: 1, text: l,
        message: `this line does not start a rule, so it was read as the end of the rule on line ${ruleAt + 1} (wrapped by a terminal)`,
      });
    }
  }
  if (count > LISTED) diagnostics.push({ severity: 'warning', code: 'INPUT_REPAIRED', message: `${count - LISTED} more wrapped lines were joined to the rule above` });
}

/**
 * Progress of a push on standard error: on a terminal one live line
 * (`nodes 12/100 · 340 MB sent · 2 retries`), elsewhere (CI logs) one line per event.
 */
import type { Io } from './io.ts';

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 || v >= 10 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export interface Progress {
  /** Bytes went onto the wire (compressed, retries included). */
  sent(bytes: number): void;
  retried(): void;
  /** A node is stored on the server; `line` describes it. */
  nodeDone(line: string): void;
  /** Something worth a line of its own (a retry and its reason). */
  note(line: string): void;
  /** The last state, on a line that stays. */
  finish(): void;
}

/** How often the live line is redrawn: often enough to look alive, seldom enough not to flood a slow terminal. */
const REDRAW_MS = 100;
const CLEAR_LINE = '\r\x1b[2K';

export function createProgress(io: Io, nodes: number): Progress {
  let done = 0;
  let bytes = 0;
  let retries = 0;
  let finished = false;
  const status = () => `nodes ${done}/${nodes} · ${formatBytes(bytes)} sent · ${retries} ${retries === 1 ? 'retry' : 'retries'}`;

  if (!io.isTTY) {
    return {
      sent: (n) => void (bytes += n),
      retried: () => void retries++,
      nodeDone: (line) => {
        done++;
        io.err(`[${done}/${nodes}] ${line}\n`);
      },
      note: (line) => io.err(`${line}\n`),
      finish: () => {
        if (!finished) io.err(`${status()}\n`);
        finished = true;
      },
    };
  }

  let drawn = '';
  const draw = () => {
    const line = status();
    if (line !== drawn) io.err(CLEAR_LINE + line);
    drawn = line;
  };
  const timer = setInterval(draw, REDRAW_MS);
  // The line must not keep the process alive if a push ends without finish().
  timer.unref();
  draw();
  return {
    sent: (n) => void (bytes += n),
    retried: () => void retries++,
    nodeDone: () => {
      done++;
      draw();
    },
    note: (line) => {
      io.err(`${CLEAR_LINE}${line}\n`);
      drawn = '';
      draw();
    },
    finish: () => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      io.err(`${CLEAR_LINE}${status()}\n`);
    },
  };
}

/**
 * Worker threads yield the CPU to the event loop. Parsing an upload, an audit and a diff each keep
 * a core busy for seconds; on a machine of two cores, that worker, the database and V8's own
 * threads left `/health` waiting a tenth of a second now and then, with the event loop idle. A
 * worker lowers its own thread's priority, so that the scheduler runs the event loop first
 * whenever it has something to do; the worker still gets every cycle the event loop leaves.
 *
 * Linux keeps a nice value per thread, and setpriority(2) given a thread id changes that thread
 * alone. Elsewhere (or where /proc is not mounted) nothing changes.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** How much lower than the event loop's a worker's priority is (nice: 0 normal, 19 lowest). */
export const WORKER_NICE = 10;

/** This thread's id, as Linux numbers threads (/proc/thread-self is `PID/task/TID`); null elsewhere. */
export function threadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** Lowers the calling thread's priority to `nice` (never raises it); false where it cannot. */
export function yieldToEventLoop(nice = WORKER_NICE): boolean {
  const tid = threadId();
  if (tid === null) return false;
  try {
    // A process started at a lower priority (nice 15) keeps it.
    if (getPriority(tid) < nice) setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}

/** Workers run below the event loop's priority, so that a busy worker does not keep /health waiting. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { test } from 'node:test';
import { createParsePool } from '../../src/services/parse-pool.ts';
import { threadId, WORKER_NICE } from '../../src/services/thread-priority.ts';

const linux = existsSync('/proc/thread-self');
const skip = linux ? false : 'skipped: this machine has no /proc/thread-self (not Linux), where threads have no priority of their own';
if (skip) console.log(`# thread-priority: ${skip}`);

/** The nice value of each thread of this process, by thread id (field 19 of /proc/…/stat). */
function niceByThread(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${process.pid}/task`)) {
    const fields = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
    out.set(Number(tid), Number(fields[16]));
  }
  return out;
}

test('a parse worker lowers its own thread, and only it', { skip }, async () => {
  const main = threadId();
  assert.equal(main, process.pid, 'the main thread is the thread whose id is the process id');
  const before = niceByThread();
  assert.equal(before.get(main), 0);
  assert.ok(![...before.values()].includes(WORKER_NICE), 'no thread runs at the workers\' priority before a worker starts');
  const pool = createParsePool({ threads: 1 });
  try {
    await pool.plan(Buffer.from('*nat\nCOMMIT\n'));
    const after = niceByThread();
    const lowered = [...after].filter(([, nice]) => nice === WORKER_NICE).map(([tid]) => tid);
    assert.equal(lowered.length, 1, `one thread (the worker's) at nice ${WORKER_NICE}: ${JSON.stringify([...after])}`);
    assert.ok(!before.has(lowered[0]), 'the lowered thread is a new one');
    assert.equal(after.get(main), 0, 'the event loop keeps its priority');
  } finally {
    await pool.close();
  }
});

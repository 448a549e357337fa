/**
 * The server's database, for commands run on the server's host (`svcpath token`, `svcpath prune`):
 * DATABASE_URL when set; else the embedded PostgreSQL the running server started in the data
 * directory (found by its postmaster.pid and the password file beside it); else that embedded
 * server started for the command alone, as the server would start it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.ts';
import { openDatabase } from './database.ts';
import type { Database } from './database.ts';

/** The connection string of an embedded server running on `dataDir`, or null. */
export async function runningEmbedded(dataDir: string, database = 'svcpath'): Promise<string | null> {
  const dir = path.resolve(dataDir);
  let pid: number;
  let port: number;
  let password: string;
  try {
    // postmaster.pid: pid, data directory, start time, port, socket directory, listen address…
    const lines = (await readFile(path.join(dir, 'pgdata', 'postmaster.pid'), 'utf8')).split('\n');
    pid = Number.parseInt(lines[0] ?? '', 10);
    port = Number.parseInt(lines[3] ?? '', 10);
    password = (await readFile(path.join(dir, 'password'), 'utf8')).trim();
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return null;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: alive, owned by another user (postgres); ESRCH: gone.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  return `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

export async function openLocalDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir'>, log?: (m: string) => void): Promise<Database> {
  const options = { poolSize: 2, ...(log ? { log } : {}) };
  if (config.databaseUrl) return openDatabase(config, options);
  const running = await runningEmbedded(config.dataDir);
  if (running) return openDatabase({ databaseUrl: running, dataDir: config.dataDir }, options);
  return openDatabase(config, options);
}

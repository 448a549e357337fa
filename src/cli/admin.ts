/**
 * Commands for an operator on the server's host, talking to its database directly (DATABASE_URL,
 * or the embedded PostgreSQL in SVCPATH_DATA_DIR):
 *   svcpath token create --name NAME --scope read|write|admin … [--cluster PATTERN …] [--json]
 *   svcpath token list [--json]
 *   svcpath token revoke ID|NAME
 *   svcpath prune [--dry-run] [--keep N] [--days D] [--json]
 */
import { parseArgs } from 'node:util';
import { AppError } from '../app-error.ts';
import { loadConfig, parseRetention } from '../config.ts';
import type { RetentionPolicy } from '../config.ts';
import { createRetention, describePolicy } from '../services/retention.ts';
import { createSnapshotService } from '../services/snapshot-service.ts';
import { createTokenService } from '../services/token-service.ts';
import type { TokenView } from '../services/token-service.ts';
import { createTraceService } from '../services/trace-service.ts';
import type { Database } from '../store/database.ts';
import { openLocalDatabase } from '../store/local-database.ts';
import { createRetentionStore } from '../store/retention-store.ts';
import { createSnapshotStore } from '../store/snapshot-store.ts';
import { createTokenStore } from '../store/token-store.ts';
import type { Io } from './io.ts';
import { ADMIN_USAGE } from './admin-usage.ts';
import { OPTIONS } from './options.ts';
import { inPlaceAnalysis } from '../services/analysis-pool.ts';


async function withDatabase<T>(work: (db: Database) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const db = await openLocalDatabase(config);
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

function tokenLine(t: TokenView): string {
  return `${t.id}  ${t.name}  ${t.hint}  scopes ${t.scopes.join(',')}  clusters ${t.clusters.join(',')}  created ${t.createdAt}  last used ${t.lastUsedAt ?? 'never'}\n`;
}

export async function tokenCommand(args: string[], io: Io): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: OPTIONS.token,
  });
  if (action === 'create') {
    if (!values.name || !values.scope?.length || positionals.length > 0) {
      io.err(ADMIN_USAGE);
      return 2;
    }
    const scopes = values.scope.flatMap((s) => s.split(',')).filter(Boolean);
    const created = await withDatabase((db) => createTokenService(createTokenStore(db)).create({
      name: values.name!, scopes, ...(values.cluster ? { clusters: values.cluster } : {}),
    }));
    if (values.json) io.out(JSON.stringify(created, null, 2) + '\n');
    else {
      io.out(`${created.secret}\n`);
      io.err(`token '${created.name}' (${created.id}): scopes ${created.scopes.join(',')}, clusters ${created.clusters.join(',')}.\n` +
        'The secret above is shown once; only its sha256 is stored. Clients send it as SVCPATH_TOKEN (Authorization: Bearer …).\n');
    }
    return 0;
  }
  if (action === 'list' && positionals.length === 0) {
    const tokens = await withDatabase((db) => createTokenService(createTokenStore(db)).list());
    if (values.json) io.out(JSON.stringify({ items: tokens }, null, 2) + '\n');
    else if (tokens.length === 0) io.err('no tokens\n');
    else for (const t of tokens) io.out(tokenLine(t));
    return 0;
  }
  if (action === 'revoke' && positionals.length === 1) {
    const gone = await withDatabase((db) => createTokenService(createTokenStore(db)).revoke(positionals[0]));
    io.out(`revoked token '${gone.name}' (${gone.id}); it is refused from the next request on\n`);
    return 0;
  }
  io.err(ADMIN_USAGE);
  return 2;
}

export async function pruneCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: OPTIONS.prune,
  });
  const config = loadConfig();
  let policy: RetentionPolicy | null = config.retention;
  if (values.keep !== undefined || values.days !== undefined) {
    const problems: string[] = [];
    policy = parseRetention([values.keep !== undefined ? `keep=${values.keep}` : '', values.days !== undefined ? `days=${values.days}` : ''].join(','), problems);
    if (problems.length > 0) throw new AppError('VALIDATION', problems.join('; ').replaceAll('SVCPATH_RETENTION ', '--'));
  }
  if (!policy) {
    io.err('svcpath: no retention policy: set SVCPATH_RETENTION (e.g. keep=100,days=30) or give --keep N and/or --days D\n');
    return 2;
  }
  const dryRun = values['dry-run'];
  const result = await withDatabase(async (db) => {
    const snapshots = createSnapshotService({ store: createSnapshotStore(db), traceService: createTraceService(), analysis: inPlaceAnalysis(db.pool) });
    const retention = createRetention({ policy, store: createRetentionStore(db), deleteSnapshot: (id) => snapshots.delete(id) });
    if (dryRun) return retention.plan();
    const deleted = await retention.apply();
    await snapshots.sweep();
    return deleted;
  });
  if (values.json) {
    io.out(JSON.stringify({ dryRun, policy, snapshots: result }, null, 2) + '\n');
    return 0;
  }
  for (const c of result) io.out(`${c.cluster}  v${c.version}  ${c.id}  ${c.createdAt.toISOString()}\n`);
  io.err(`${dryRun ? 'would delete' : 'deleted'} ${result.length} snapshot${result.length === 1 ? '' : 's'}; keeping ${describePolicy(policy)}\n`);
  return 0;
}

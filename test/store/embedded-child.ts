/**
 * Run by embedded.test.ts as a separate process that starts the embedded server and is then
 * killed with SIGKILL. With `no-watchdog` as second argument its postmaster is left behind.
 */
import { startEmbeddedPostgres } from '../../src/store/embedded.ts';

const server = await startEmbeddedPostgres({ dataDir: process.argv[2], watchdog: process.argv[3] !== 'no-watchdog' });
process.stdout.write(`${JSON.stringify({ port: server.port, connectionString: server.connectionString, pid: server.pid() })}\n`);
setInterval(() => {}, 60_000);

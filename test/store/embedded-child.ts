/**
 * Run by embedded.test.ts as a separate process that starts the embedded server
 * and is then killed with SIGKILL, leaving its postmaster behind.
 */
import { startEmbeddedPostgres } from '../../src/store/embedded.ts';

const server = await startEmbeddedPostgres({ dataDir: process.argv[2] });
process.stdout.write(`${JSON.stringify({ port: server.port, connectionString: server.connectionString })}\n`);
setInterval(() => {}, 60_000);

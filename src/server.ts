/** The only file that listens: reads the config, builds the app, binds HOST:PORT. */
import { loadConfig } from './config.ts';
import { buildApp } from './app.ts';

const config = loadConfig();
const app = await buildApp({
  logger: { level: config.logLevel },
  bodyLimit: config.bodyLimitBytes,
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app.close().then(() => process.exit(0));
  });
}
await app.listen({ port: config.port, host: config.host });

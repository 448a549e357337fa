// Prisma CLI configuration. Prisma 7 takes the database URL from here, not from
// schema.prisma. `prisma generate` (run from postinstall) needs no database, so a
// missing DATABASE_URL is not an error here; the application gets its URL from
// src/config.ts and hands it to the driver adapter.
import { defineConfig } from 'prisma/config';

const url = process.env.DATABASE_URL;

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  ...(url ? { datasource: { url } } : {}),
});

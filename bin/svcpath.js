#!/usr/bin/env node
// Launches the TypeScript CLI through tsx, so `npx svcpath …` works without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

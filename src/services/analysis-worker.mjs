// Entry of the analysis worker thread. A worker does not inherit the TypeScript loader the main
// thread was started with (`node --import tsx` registers it for that thread), so it registers
// tsx's loader itself before loading the worker's module.
import { register } from 'tsx/esm/api';

register();
const worker = import('./analysis-worker.ts');
export const audit = worker.then((m) => m.audit);
export const diff = worker.then((m) => m.diff);

// Entry of a parse worker thread: registers tsx's loader (a worker does not inherit the main
// thread's) before loading the worker's module.
import { register } from 'tsx/esm/api';

register();
const worker = await import('./parse-worker.ts');
export default worker.default;
export const manifests = worker.manifests;
export const plan = worker.plan;

/**
 * A load client in its own process, so that its work does not share the server's event loop:
 * reads URLs as JSON from argv[2] (a file), GETs them one after another, prints the latencies.
 */
import { readFileSync } from 'node:fs';

const urls = JSON.parse(readFileSync(process.argv[2], 'utf8')) as string[];
const warm = Number(process.argv[3] ?? 200);
const samples: number[] = [];
for (let i = 0; i < urls.length; i++) {
  const t = performance.now();
  const r = await fetch(urls[i]);
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${urls[i]} answered ${r.status}`);
  if (i >= warm) samples.push(performance.now() - t);
}
process.stdout.write(JSON.stringify(samples));

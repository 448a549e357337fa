/**
 * The svcpath command line.
 *   svcpath trace --rules dump.txt --node-ip 10.32.11.62 10.43.62.130:80 [--from 10.42.0.7] [--json]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/index.ts';
import type { Entry, FormatOption, Protocol } from '../engine/index.ts';
import { AppError } from '../app-error.ts';
import { createTraceService } from '../services/trace-service.ts';
import { formatTrace } from './format.ts';

const USAGE = `usage:
  svcpath trace --rules FILE --node-ip IP [--node-ip IP …] DESTINATION:PORT
                [--from SOURCE] [--protocol tcp|udp|sctp|icmp] [--entry PREROUTING|OUTPUT]
                [--format auto|iptables-save|iptables-S] [--table nat] [--in-interface IF]
                [--out-interface IF] [--source-port N] [--node-name NAME] [--json]

  Traces the first packet of a new connection through a node's rule dump and prints every
  outcome with its probability and the rules on its path. FILE '-' reads standard input.
  Without --from, the packet comes from 203.0.113.10 (outside the cluster).
`;

function splitHostPort(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new AppError('VALIDATION', `expected DESTINATION:PORT, got '${text}'`);
  return { host: m[1], port: Number(m[2]) };
}

async function traceCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      rules: { type: 'string' },
      'node-ip': { type: 'string', multiple: true },
      'node-name': { type: 'string' },
      from: { type: 'string' },
      protocol: { type: 'string', default: 'tcp' },
      entry: { type: 'string' },
      format: { type: 'string', default: 'auto' },
      table: { type: 'string' },
      'in-interface': { type: 'string' },
      'out-interface': { type: 'string' },
      'source-port': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.rules || !values['node-ip']?.length || positionals.length !== 1) {
    io.err(USAGE);
    return 2;
  }
  const rules = values.rules === '-' ? readFileSync(0, 'utf8') : readFileSync(values.rules, 'utf8');
  const { host, port } = splitHostPort(positionals[0]);
  const node = { ...(values['node-name'] ? { name: values['node-name'] } : {}), addresses: values['node-ip'] };
  const service = createTraceService({ cacheSize: 1 });
  const result = service.trace({
    rules,
    format: values.format as FormatOption,
    table: values.table,
    node,
    packet: {
      source: values.from ?? '203.0.113.10',
      destination: host,
      port,
      protocol: values.protocol as Protocol,
      ...(values.entry ? { entry: values.entry as Entry } : {}),
      ...(values['in-interface'] ? { inInterface: values['in-interface'] } : {}),
      ...(values['out-interface'] ? { outInterface: values['out-interface'] } : {}),
      ...(values['source-port'] ? { sourcePort: Number(values['source-port']) } : {}),
    },
  });
  io.out(values.json ? JSON.stringify(result, null, 2) + '\n' : formatTrace(result, node));
  return 0;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

const COMMANDS: Record<string, (args: string[], io: Io) => Promise<number>> = {
  trace: traceCommand,
};

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const [command, ...rest] = argv;
  const run = command ? COMMANDS[command] : undefined;
  if (!run) {
    io.err(USAGE);
    return command === '--help' || command === 'help' ? 0 : 2;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof AppError || e instanceof EngineError) {
      const excerpt = e instanceof EngineError ? e.excerpt() : (e.details.excerpt as string | undefined);
      io.err(`svcpath: ${e.message}\n${excerpt ? excerpt + '\n' : ''}`);
      return 1;
    }
    if (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`svcpath: ${e.message}\n${USAGE}`);
      return 2;
    }
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      io.err(`svcpath: ${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}

/**
 * The svcpath command line.
 *   svcpath trace --rules dump.txt --node-ip 10.32.11.62 10.43.62.130:80 [--from 10.42.0.7] [--json]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultSource, EngineError, familyOf, hostPort, readDestination, readProtocol } from '../engine/index.ts';
import type { Entry, FormatOption, Protocol } from '../engine/index.ts';
import { AppError } from '../app-error.ts';
import { createTraceService } from '../services/trace-service.ts';
import { readMeaning } from '../services/kube-meaning.ts';
import { diffSnapshots, isNftables, resolveServiceFrontends, runAudit } from '../engine/index.ts';
import { formatTrace } from './format.ts';
import { readInput, stdio } from './io.ts';
import type { Io } from './io.ts';
import { push } from './push.ts';
import type { PushNode } from './push.ts';
import { ADMIN_USAGE } from './admin-usage.ts';
import { OPTIONS } from './options.ts';
import { completionScript, SHELLS } from './completion.ts';
import type { Shell } from './completion.ts';

export type { Io } from './io.ts';

const USAGE = `usage:
  svcpath push --server URL --cluster NAME --node NAME=FILE [--node6 NAME=FILE] [--node-ip NAME=IP[,IP…]] [--node-routes NAME=FILE] …
               [--manifests FILE] [--label KEY=VALUE …] [--format auto|iptables-save|iptables-S|nftables]
               [--concurrency N] [--token TOKEN] [--json]
  svcpath push --server URL --cluster NAME --node NAME --rules FILE [--rules6 FILE] --node-ip IP [--node-ip IP …] [--routes FILE] …

  Uploads one snapshot (every node named, and the manifests) to a svcpath server: each dump is
  streamed from disk gzip-compressed, N nodes at a time (default 4), and a node the server or the
  network fails is sent again (3 attempts). A push that fails or is interrupted leaves nothing behind.
  A dual-stack node has two dumps: --node NAME=FILE its iptables-save output, --node6 NAME=FILE its
  ip6tables-save output (--rules6 FILE in the single-node form), and addresses of both families.
  URL defaults to $SVCPATH_SERVER or http://localhost:8080; TOKEN to $SVCPATH_TOKEN (sent as a bearer token).

  svcpath diff A.txt B.txt [--node-ip IP …] [--manifests-a FILE --manifests-b FILE] [--cluster-cidr CIDR] [--json]
               what changed from dump A to dump B of one node: where traffic goes, rules, manifests;
               exits 0 when nothing changed (known differences between backends aside), 1 when
               something did, 2 on an error (as diff(1))

  svcpath audit --node NAME=FILE [--node NAME=FILE …] [--node-ip NAME=IP[,IP…] …] --manifests FILE [--json]
               where the rules and the manifests disagree; exits 3 when there is an error finding

  svcpath trace --rules FILE [--rules6 FILE] --node-ip IP [--node-ip IP …] DESTINATION:PORT | [IPV6]:PORT | DESTINATION --port N
                [--from SOURCE] [--protocol tcp|udp|sctp|icmp (any case)] [--entry PREROUTING|OUTPUT]
                [--format auto|iptables-save|iptables-S|nftables] [--table nat] [--in-interface IF]
                [--out-interface IF] [--routes FILE] [--source-port N] [--node-name NAME] [--manifests FILE] [--json]
  svcpath trace --rules FILE --node-ip IP --manifests FILE --service NS/NAME|NAME.NS --port NAME|NUMBER [--from SOURCE] …
                traces every frontend of the Service port that reaches this node (cluster IPs, its NodePort,
                load-balancer and external IPs)
  --rules6 FILE is a dual-stack node's ip6tables-save output: IPv6 destinations are traced through it
  (and the IPv6 frontends of a dual-stack Service).

  Traces the first packet of a new connection through a node's rule dump and prints every
  outcome with its probability and the rules on its path. FILE '-' reads standard input.
  --routes FILE is the node's \`ip route\` (and/or \`ip -6 route\`) output: it names the interface a
  packet leaves through; without it, an answer that depends on that interface is given per case.
  Without --from, the packet comes from 203.0.113.10 (2001:db8::10 for an IPv6 destination),
  outside the cluster.

${ADMIN_USAGE}
  svcpath completion bash|zsh
               prints shell completions: source <(svcpath completion bash), or put the output where
               your shell loads completions from
`;

async function traceCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: OPTIONS.trace,
  });
  const byService = values.service !== undefined;
  if (!values.rules || !values['node-ip']?.length || positionals.length !== (byService ? 0 : 1) || (byService && (!values.port || !values.manifests))) {
    io.err(USAGE);
    return 2;
  }
  const rules = values.rules === '-' ? readFileSync(0, 'utf8') : readFileSync(values.rules, 'utf8');
  const rules6 = values.rules6 ? readInput(values.rules6).toString('utf8') : undefined;
  const manifests = values.manifests ? readInput(values.manifests).toString('utf8') : undefined;
  const routes = values.routes ? readInput(values.routes).toString('utf8') : undefined;
  const node = { ...(values['node-name'] ? { name: values['node-name'] } : {}), addresses: values['node-ip'] };
  const service = createTraceService();
  // A dual-stack node's IPv6 dump takes the IPv6 packets; a frontend of a family no dump holds is said, not traced.
  const dumpFor = (destination: string): string | null => {
    const family = familyOf(destination);
    if (family === 'ipv6' && rules6 !== undefined) return rules6;
    const own = service.ruleset(rules, values.format as FormatOption, values.table);
    return isNftables(own) || own.family === family || !byService ? rules : null;
  };
  // An address, or every frontend of a Service port that lands on this node.
  const targets: { destination: string; port: number; protocol: Protocol; label?: string }[] = [];
  if (byService) {
    const { model } = readMeaning(manifests!);
    const port = /^\d+$/.test(values.port!) ? Number(values.port) : values.port!;
    for (const f of resolveServiceFrontends(model, values.service!, port, [{ name: node.name ?? 'node', addresses: node.addresses }])) {
      targets.push({ ...f.packet, label: `${values.service} port ${f.servicePort.name || f.servicePort.port} via ${f.frontend} ${hostPort(f.packet.destination, f.packet.port)}` });
    }
  } else {
    const port = values.port === undefined ? undefined : /^\d+$/.test(values.port) ? Number(values.port) : NaN;
    if (Number.isNaN(port)) throw new AppError('VALIDATION', `--port must be a number for a trace to an address, got '${values.port}'`);
    targets.push({ ...readDestination(positionals[0], port), protocol: readProtocol(values.protocol) });
  }
  const skipped = targets.filter((target) => dumpFor(target.destination) === null);
  for (const s of skipped) io.err(`svcpath trace: ${s.label}: not traced, the node's dump is not ${familyOf(s.destination) === 'ipv6' ? 'IPv6 (give its ip6tables-save output as --rules6 FILE)' : 'IPv4'}\n`);
  targets.splice(0, targets.length, ...targets.filter((target) => !skipped.includes(target)));
  const results = targets.map((target) => service.trace({
    rules: dumpFor(target.destination)!,
    ...(manifests !== undefined ? { manifests } : {}),
    ...(routes !== undefined ? { routes } : {}),
    format: values.format as FormatOption,
    table: values.table,
    node,
    packet: {
      source: values.from ?? defaultSource(target.destination),
      destination: target.destination,
      port: target.port,
      protocol: target.protocol,
      ...(values.entry ? { entry: values.entry as Entry } : {}),
      ...(values['in-interface'] ? { inInterface: values['in-interface'] } : {}),
      ...(values['out-interface'] ? { outInterface: values['out-interface'] } : {}),
      ...(values['source-port'] ? { sourcePort: Number(values['source-port']) } : {}),
    },
  }));
  if (values.json) {
    io.out(JSON.stringify(byService ? results.map((r, i) => ({ frontend: targets[i].label, ...r })) : results[0], null, 2) + '\n');
  } else {
    io.out(results.map((r, i) => `${targets[i].label ? `== ${targets[i].label}\n` : ''}${formatTrace(r, node)}`).join('\n'));
  }
  return 0;
}

function pairs(values: readonly string[] | undefined, what: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new AppError('VALIDATION', `${what} must be NAME=VALUE, got '${v}'`);
    // Given twice is a mistake to say, not a value to replace silently.
    if (out.has(v.slice(0, eq))) throw new AppError('VALIDATION', `${what} names '${v.slice(0, eq)}' twice`);
    out.set(v.slice(0, eq), v.slice(eq + 1));
  }
  return out;
}

async function pushCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: OPTIONS.push,
  });
  if (!values.cluster || !values.node?.length) {
    io.err(USAGE);
    return 2;
  }
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new AppError('VALIDATION', `--concurrency must be a whole number from 1, got '${values.concurrency}'`);
  const nodes: PushNode[] = [];
  if (values.rules) {
    // Single-node form: --node NAME --rules FILE --node-ip IP …
    if (values.node.length !== 1) throw new AppError('VALIDATION', '--rules goes with exactly one --node NAME');
    if (values['node-routes']?.length) throw new AppError('VALIDATION', 'with --rules, give the node\'s routes as --routes FILE');
    if (values.node6?.length) throw new AppError('VALIDATION', 'with --rules, give the node\'s IPv6 dump as --rules6 FILE');
    nodes.push({
      name: values.node[0], addresses: values['node-ip'] ?? [], file: values.rules,
      ...(values.routes ? { routes: values.routes } : {}), ...(values.rules6 ? { file6: values.rules6 } : {}),
    });
  } else {
    if (values.routes) throw new AppError('VALIDATION', '--routes FILE goes with --node NAME --rules FILE; for --node NAME=FILE give --node-routes NAME=FILE');
    if (values.rules6) throw new AppError('VALIDATION', '--rules6 FILE goes with --node NAME --rules FILE; for --node NAME=FILE give --node6 NAME=FILE');
    const files = pairs(values.node, '--node');
    const ips = pairs(values['node-ip'], '--node-ip');
    const routes = pairs(values['node-routes'], '--node-routes');
    const files6 = pairs(values.node6, '--node6');
    for (const name of files6.keys()) if (!files.has(name)) throw new AppError('VALIDATION', `--node6 names node '${name}' but no --node ${name}=FILE (its IPv4 dump) is given`);
    for (const name of ips.keys()) if (!files.has(name)) throw new AppError('VALIDATION', `--node-ip names node '${name}' but no --node ${name}=FILE is given`);
    for (const name of routes.keys()) if (!files.has(name)) throw new AppError('VALIDATION', `--node-routes names node '${name}' but no --node ${name}=FILE is given`);
    for (const [name, file] of files) {
      nodes.push({
        name, addresses: (ips.get(name) ?? '').split(',').filter(Boolean), file,
        ...(routes.has(name) ? { routes: routes.get(name)! } : {}), ...(files6.has(name) ? { file6: files6.get(name)! } : {}),
      });
    }
  }
  const token = values.token ?? process.env.SVCPATH_TOKEN;
  return push({
    server: values.server ?? process.env.SVCPATH_SERVER ?? 'http://localhost:8080',
    ...(token ? { token } : {}),
    cluster: values.cluster,
    nodes,
    ...(values.manifests ? { manifests: values.manifests } : {}),
    labels: Object.fromEntries(pairs(values.label, '--label')),
    ...(values.format ? { format: values.format } : {}),
    concurrency,
    json: values.json,
  }, io);
}

async function auditCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: OPTIONS.audit,
  });
  if (!values.node?.length || !values.manifests) {
    io.err(USAGE);
    return 2;
  }
  const files = pairs(values.node, '--node');
  const ips = pairs(values['node-ip'], '--node-ip');
  const traceService = createTraceService();
  const nodes = [...files].map(([name, file]) => ({
    name,
    addresses: (ips.get(name) ?? '').split(',').filter(Boolean),
    ruleset: traceService.ruleset(readInput(file).toString('utf8'), values.format as FormatOption),
  }));
  const { model, index } = readMeaning(readInput(values.manifests).toString('utf8'));
  const findings = runAudit({ nodes, model, index });
  if (values.json) {
    io.out(JSON.stringify({ findings }, null, 2) + '\n');
  } else {
    const counts = { error: 0, warning: 0, info: 0 };
    for (const f of findings) {
      counts[f.severity]++;
      io.out(`${f.severity.toUpperCase().padEnd(7)} ${f.check}${f.node ? ` [${f.node}]` : ''}${f.service ? ` ${f.service}${f.port ? `:${f.port}` : ''}` : ''}: ${f.message}\n`);
      for (const r of f.rules.slice(0, 5)) io.out(`          ${r.table}/${r.chain} #${r.index}  ${r.rule}\n`);
    }
    io.out(`${counts.error} errors, ${counts.warning} warnings, ${counts.info} notes\n`);
  }
  return findings.some((f) => f.severity === 'error') ? 3 : 0;
}

async function diffCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: OPTIONS.diff,
  });
  if (positionals.length !== 2) {
    io.err(USAGE);
    return 2;
  }
  const traceService = createTraceService();
  const side = (file: string, manifests?: string) => {
    const meaning = manifests ? readMeaning(readInput(manifests).toString('utf8')) : null;
    return {
      nodes: [{ name: 'node', addresses: values['node-ip'] ?? [], ruleset: traceService.ruleset(readInput(file).toString('utf8'), values.format as FormatOption) }],
      model: meaning?.model ?? null,
      index: meaning?.index ?? null,
    };
  };
  const result = diffSnapshots(side(positionals[0], values['manifests-a']), side(positionals[1], values['manifests-b']),
    values['cluster-cidr'] ? { clusterCIDR: values['cluster-cidr'] } : {});
  // As diff(1): 1 when anything changed (a known difference between backends is not a change).
  const s = result.summary;
  const changed = s.frontends.added + s.frontends.removed + s.frontends.changed + result.rules.length + result.manifests.length > 0 ? 1 : 0;
  if (values.json) {
    io.out(JSON.stringify(result, null, 2) + '\n');
    return changed;
  }
  const { backends } = result;
  if (backends.across.length > 0) {
    io.out(`backends: ${backends.from} → ${backends.to}: the rules are of different backends and are not compared rule by rule; every frontend is traced on both sides\n`);
  }
  io.out(`frontends: ${s.frontends.added} added, ${s.frontends.removed} removed, ${s.frontends.changed} changed, ${s.frontends.unchanged} unchanged${s.frontends.known ? `, ${s.frontends.known} with known differences` : ''}\n`);
  io.out(`endpoints: ${s.endpoints.added} added, ${s.endpoints.removed} removed; verdict changes ${s.verdictChanges}, masquerade changes ${s.masqueradeChanges}, share changes ${s.probabilityChanges}\n`);
  io.out(`rules: ${s.rules.chainsAdded} chains added, ${s.rules.chainsRemoved} removed, ${s.rules.renamed} renamed; ${s.rules.rulesAdded} rules added, ${s.rules.rulesRemoved} removed, ${s.rules.rulesMoved} moved`
    + `${s.rules.setsAdded + s.rules.setsRemoved + s.rules.elementsAdded + s.rules.elementsRemoved ? `; ${s.rules.setsAdded} sets added, ${s.rules.setsRemoved} removed; ${s.rules.elementsAdded} elements added, ${s.rules.elementsRemoved} removed` : ''}\n`);
  io.out(`manifests: ${s.manifests.added} added, ${s.manifests.removed} removed, ${s.manifests.changed} changed\n`);
  for (const k of result.knownDifferences) {
    io.out(`\nKNOWN ${k.code}${k.frontends ? ` (${k.frontends} frontend${k.frontends > 1 ? 's' : ''})` : ' (seen in the rules)'}: ${k.reason}\n`);
  }
  for (const f of result.frontends) {
    if (f.known) continue;
    io.out(`\n${f.change.toUpperCase()} ${f.frontend.kind} ${hostPort(f.frontend.ip, f.frontend.port)}/${f.frontend.protocol}${f.service ? ` (${f.service})` : ''}\n`);
    for (const c of f.changes) io.out(`  ${c}\n`);
  }
  if (result.rules.length) io.out('\n');
  for (const r of result.rules) {
    io.out(`${r.change} ${r.table}/${r.chain}${r.from !== undefined ? ` ${r.from} → ${r.to}` : ''}${r.rule ? `: ${r.rule}` : ''}\n`);
  }
  for (const m of result.manifests) {
    io.out(`${m.change} ${m.kind} ${m.name}${m.fields ? `: ${m.fields.map((x) => x.path).join(', ')}` : ''}\n`);
  }
  return changed;
}

async function completionCommand(args: string[], io: Io): Promise<number> {
  const shell = args[0];
  if (args.length !== 1 || !(SHELLS as readonly string[]).includes(shell)) {
    io.err(commandUsage('completion'));
    return 2;
  }
  io.out(completionScript(shell as Shell));
  return 0;
}

const COMMANDS: Record<string, (args: string[], io: Io) => Promise<number>> = {
  completion: completionCommand,
  diff: diffCommand,
  trace: traceCommand,
  push: pushCommand,
  audit: auditCommand,
  // On the server's host, against its database; loaded only when used.
  token: async (args, io) => (await import('./admin.ts')).tokenCommand(args, io),
  prune: async (args, io) => (await import('./admin.ts')).pruneCommand(args, io),
};

/** The usage paragraphs of one command: those that begin `svcpath COMMAND`, and the text under them. */
export function commandUsage(command: string): string {
  const paragraphs = `${USAGE.replace(/^usage:\n/, '')}\n`.split(/\n\s*\n/);
  const out: string[] = [];
  let mine = false;
  for (const p of paragraphs) {
    const head = /^\s*svcpath (\S+)/.exec(p);
    if (head) mine = head[1] === command;
    if (mine && p.trim()) out.push(p.replace(/\s+$/, ''));
  }
  return `usage:\n${out.join('\n\n')}\n\n${EXIT_CODES}`;
}

const EXIT_CODES = `exit codes: 0 done; 1 an error (bad input, server unreachable); 2 bad usage.
  svcpath diff: 0 no change, 1 changes, 2 an error (as diff(1)). svcpath audit: 3 when a finding is an error.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-V' || command === 'version') {
    io.out(`svcpath ${version()}\n`);
    return 0;
  }
  const run = command ? COMMANDS[command] : undefined;
  if (!run) {
    const asked = command === '--help' || command === '-h' || command === 'help';
    if (asked) io.out(`${USAGE}\n${EXIT_CODES}`);
    else io.err(`${command ? `svcpath: unknown command '${command}'\n` : ''}${USAGE}`);
    return asked ? 0 : 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(commandUsage(command));
    return 0;
  }
  // diff(1)'s convention: 1 says "they differ", so an error is 2.
  const failed = command === 'diff' ? 2 : 1;
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof AppError || e instanceof EngineError) {
      const excerpt = e instanceof EngineError ? e.excerpt() : (e.details.excerpt as string | undefined);
      io.err(`svcpath: ${e.message}\n${excerpt ? excerpt + '\n' : ''}`);
      return failed;
    }
    if (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`svcpath: ${e.message}\n${commandUsage(command)}`);
      return 2;
    }
    if (e instanceof TypeError && e.message === 'fetch failed') {
      io.err(`svcpath: cannot reach the server: ${(e.cause as Error | undefined)?.message ?? e.message}\n`);
      return failed;
    }
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      io.err(`svcpath: ${(e as Error).message}\n`);
      return failed;
    }
    throw e;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}

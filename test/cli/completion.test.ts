/** `svcpath completion bash|zsh`: scripts made from the options the commands declare, run in a real bash. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { OPTIONS } from '../../src/cli/options.ts';

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}

/** What bash offers after `words` (the last one being completed), with the script loaded. */
function complete(script: string, dir: string, words: string[]): string[] {
  const file = join(dir, 'svcpath.bash');
  writeFileSync(file, script);
  const quoted = words.map((w) => `'${w.replace(/'/g, "'\\''")}'`).join(' ');
  const out = execFileSync('bash', ['-c', `source '${file}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _svcpath; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: dir, encoding: 'utf8' });
  return out.split('\n').filter(Boolean).sort();
}

test('bash: commands, every declared option, fixed values, subcommands and files', async () => {
  const r = await run(['completion', 'bash']);
  assert.equal(r.code, 0, r.err);
  const dir = mkdtempSync(join(tmpdir(), 'svcpath-completion-'));
  try {
    writeFileSync(join(dir, 'dump-a.txt'), '');
    writeFileSync(join(dir, 'dump-b.txt'), '');
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'tr']), ['trace']);
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'pu']), ['push']);
    // Every option a command reads is offered, and nothing else.
    for (const [command, options] of Object.entries(OPTIONS)) {
      const offered = complete(r.out, dir, ['svcpath', command, ...(command === 'token' ? ['create'] : []), '--']);
      assert.deepEqual(offered, [...Object.keys(options).map((o) => `--${o}`), '--help'].sort(), command);
    }
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'trace', '--protocol', 's']), ['sctp']);
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'trace', '--format', 'ipt']), ['iptables-S', 'iptables-save']);
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'token', 'r']), ['revoke']);
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'trace', '--rules', 'dump-']), ['dump-a.txt', 'dump-b.txt']);
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'diff', 'dump-']), ['dump-a.txt', 'dump-b.txt']);
    // --node NAME=FILE: bash breaks the word at '='.
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'push', '--node', 'a', '=', 'dump-b']), ['dump-b.txt']);
    // An option that takes a free value offers nothing to complete it with.
    assert.deepEqual(complete(r.out, dir, ['svcpath', 'trace', '--from', '']), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('zsh: the same function through bashcompinit; a missing or unknown shell is a usage error', async () => {
  const zsh = await run(['completion', 'zsh']);
  assert.equal(zsh.code, 0);
  assert.match(zsh.out, /^#compdef svcpath\n/);
  assert.match(zsh.out, /bashcompinit/);
  assert.match(zsh.out, /complete -F _svcpath svcpath/);
  for (const args of [['completion'], ['completion', 'fish']]) {
    const r = await run(args);
    assert.equal(r.code, 2);
    assert.match(r.err, /svcpath completion bash\|zsh/);
  }
});

/**
 * Shell completions, made from the options every command declares (options.ts): commands, their
 * options, the values an option takes from a fixed list, and file names where an option reads a file.
 *   source <(svcpath completion bash)        # bash
 *   source <(svcpath completion zsh)         # zsh (through bash's completion, bashcompinit)
 */
import { OPTIONS, VALUES } from './options.ts';

/** Subcommands of a command, completed after it. */
const SUBCOMMANDS: Readonly<Record<string, readonly string[]>> = { token: ['create', 'list', 'revoke'], completion: ['bash', 'zsh'] };

/** Options whose value is a file (or NAME=FILE). */
const FILES = new Set(['rules', 'manifests', 'manifests-a', 'manifests-b', 'routes', 'node', 'node-routes']);

export const SHELLS = ['bash', 'zsh'] as const;
export type Shell = (typeof SHELLS)[number];

function words(list: Iterable<string>): string {
  return [...list].join(' ');
}

function bash(): string {
  const commands = [...Object.keys(OPTIONS), 'completion', '--help', '--version'];
  const perCommand = Object.entries(OPTIONS).map(([command, options]) => {
    const flags = [...Object.keys(options).map((o) => `--${o}`), '--help'];
    const takesValue = Object.entries(options).filter(([, o]) => o.type === 'string').map(([name]) => `--${name}`);
    const sub = SUBCOMMANDS[command];
    return `    ${command})\n      opts="${words(flags)}"\n      valued="${words(takesValue)}"${sub ? `\n      subs="${words(sub)}"` : ''}\n      ;;`;
  });
  const values = Object.entries(VALUES).map(([o, v]) => `    --${o}) COMPREPLY=($(compgen -W "${words(v)}" -- "$cur")); return ;;`);
  const files = [...FILES].map((o) => `--${o}`).join('|');
  return `# svcpath completion for bash: source <(svcpath completion bash)
_svcpath() {
  local cur prev command opts valued subs
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${words(commands)}" -- "$cur"))
    return
  fi
  command="\${COMP_WORDS[1]}"
  case "$command" in
${perCommand.join('\n')}
    completion)
      COMPREPLY=($(compgen -W "${words(SUBCOMMANDS.completion)}" -- "$cur"))
      return ;;
    *) return ;;
  esac
  case "$prev" in
${values.join('\n')}
    ${files}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    # NAME=FILE: bash splits the word at '=' (COMP_WORDBREAKS), so the file comes after a '=' word.
    =) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [ "$command" = diff ] && [ "\${cur#-}" = "$cur" ]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  if [ -n "$subs" ] && [ "$COMP_CWORD" -eq 2 ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return
  fi
  case " $valued " in
    *" $prev "*) return ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _svcpath svcpath
`;
}

/** zsh reads bash completions through bashcompinit, so one function serves both. */
function zsh(): string {
  return `#compdef svcpath
# svcpath completion for zsh: source <(svcpath completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bash().split('\n').filter((l) => !l.startsWith('# svcpath completion for bash')).join('\n')}`;
}

export function completionScript(shell: Shell): string {
  return shell === 'bash' ? bash() : zsh();
}

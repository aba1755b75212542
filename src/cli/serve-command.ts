/**
 * Registers `derrick serve` and its flags, one per configuration key with its meaning and default from the key
 * table (src/config/keys.ts); the server's modules load only when the command runs.
 */
import { Option, type Command } from 'commander';
import { defaultText, flagName, KEY_NAMES, keyInfo, type ScalarKey } from '../config/keys.ts';

/** The --help line of a key: its meaning, without Markdown, and its default. */
export function helpText(key: ScalarKey): string {
  const info = keyInfo(key);
  const plain = info.meaning.replace(/`/g, '');
  const json = info.type === 'json' ? 'JSON: ' : '';
  const fallback = defaultText(key);
  const shown = info.type === 'boolean' ? (fallback === 'true' ? 'on' : 'off') : (fallback ?? 'none');
  return `${json}${plain} (default: ${shown})`;
}

export function addServeCommand(program: Command): void {
  const command = program
    .command('serve')
    .description('serve the published tree to docker, podman, skopeo and containerd')
    .option('--config <file>', 'a YAML configuration file (keys as in docs/configuration.md)');
  // Flags are told apart from defaults: an absent flag leaves the key to the file and the environment.
  const attributes = new Map<ScalarKey, string>();
  for (const key of KEY_NAMES) {
    const info = keyInfo(key);
    const flag = `--${flagName(key)}`;
    const option =
      info.type === 'boolean'
        ? new Option(flag, helpText(key))
        : new Option(`${flag} <${info.value ?? 'value'}>`, helpText(key));
    command.addOption(option);
    if (info.type === 'boolean') command.addOption(new Option(`--no-${flagName(key)}`, `turn ${flag} off`));
    attributes.set(key, option.attributeName());
  }
  command.action(async (opts: Record<string, string | boolean | undefined>) => {
    const flags: Partial<Record<ScalarKey, string | boolean>> = {};
    for (const [key, attribute] of attributes) {
      const value = opts[attribute];
      if (value !== undefined) flags[key] = value;
    }
    const { serve } = await import('./serve.ts');
    await serve(typeof opts.config === 'string' ? opts.config : undefined, flags);
  });
}

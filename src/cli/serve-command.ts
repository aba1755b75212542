/** Registers `derrick serve` and its flags; the server's modules load only when the command runs. */
import type { Command } from 'commander';
import { flagName, SCALAR_KEYS, type ScalarKey } from '../config/keys.ts';

export function addServeCommand(program: Command): void {
  const command = program
    .command('serve')
    .description('serve the published tree to docker, podman, skopeo and containerd')
    .option('--config <file>', 'a YAML configuration file (keys as in docs/configuration.md)');
  for (const key of Object.keys(SCALAR_KEYS) as ScalarKey[]) {
    command.option(`--${flagName(key)} <value>`, `config key ${key}`);
  }
  command.action(async (opts: Record<string, string | undefined>) => {
    const flags: Partial<Record<ScalarKey, string>> = {};
    for (const key of Object.keys(SCALAR_KEYS) as ScalarKey[]) {
      const camel = flagName(key).replace(/-([a-z])/g, (_match, letter: string) => letter.toUpperCase());
      const value = opts[camel];
      if (value !== undefined) flags[key] = value;
    }
    const { serve } = await import('./serve.ts');
    await serve(opts.config, flags);
  });
}

/** `derrick serve`: load the configuration, build the app, listen, and close cleanly on SIGINT/SIGTERM. */
import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load.ts';
import { flagName, SCALAR_KEYS, type ScalarKey } from '../config/schema.ts';
import { buildApp } from '../http/app.ts';
import { Tree } from '../store/tree.ts';

export function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}

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
    let config;
    try {
      config = loadConfig({ file: opts.config, env: process.env, flags });
    } catch (error) {
      if (error instanceof ConfigError) {
        process.stderr.write(`derrick: invalid configuration: ${error.message}\n`);
        process.exitCode = 1;
        return;
      }
      throw error;
    }
    mkdirSync(config.dataDir, { recursive: true });
    const tree = new Tree(config.dataDir, { listingCache: config.cache.listings });
    const app = buildApp(config, tree);
    const { host, port } = splitListen(config.listen);
    try {
      await app.listen({ host, port });
    } catch (error) {
      process.stderr.write(`derrick: cannot listen on ${config.listen}: ${(error as Error).message}\n`);
      process.exitCode = 1;
      return;
    }
    // Handlers before the ready line: a supervisor may signal as soon as it reads it.
    const stop = (): void => {
      void app.close().then(() => {
        process.exitCode = 0;
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const address = app.server.address();
    const shown =
      typeof address === 'object' && address ? `${address.address}:${address.port}` : config.listen;
    process.stderr.write(
      `derrick: serving ${tree.layout.root} on ${config.tls ? 'https' : 'http'}://${shown} (mode ${config.mode})\n`,
    );
  });
}

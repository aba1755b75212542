/**
 * The cost of authentication on the hot path: a derrick whose every repository needs a login (htpasswd with a
 * realistic bcrypt cost of 10, and its own token endpoint), asked the same manifest HEAD as the open derrick,
 * once with Basic credentials and once with a bearer token. bcrypt (~50–100 ms a check) must be paid once per
 * user and password, and a token verified once per token, or these runs would manage a few dozen requests/s.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { request, startDerrick, type BenchServer } from './servers.ts';
import type { Fixtures } from './types.ts';

const USER = 'bench';
const PASSWORD = 'bench-password';
const SERVICE = 'derrick-bench';

export interface AuthServer {
  server: BenchServer;
  /** Authorization header values that pass. */
  basic: string;
  bearer: string;
}

/** Starts derrick in redirect mode with every repository behind a login, and gets a token for `repository`. */
export async function startAuthDerrick(
  fixtures: Fixtures,
  options: { redirectUrl: string; workers: number | undefined; repository: string },
): Promise<AuthServer> {
  const dir = path.join(fixtures.workDir, 'auth');
  mkdirSync(dir, { recursive: true });
  const htpasswd = path.join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${USER}:${bcrypt.hashSync(PASSWORD, 10)}\n`);
  const key = path.join(dir, 'token.key');
  execFileSync('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    key,
  ]);
  const config = path.join(dir, 'derrick.yaml');
  writeFileSync(
    config,
    [
      'auth:',
      `  htpasswd: ${JSON.stringify(htpasswd)}`,
      '  token:',
      `    service: ${SERVICE}`,
      `    key: ${JSON.stringify(key)}`,
      '    ttlSeconds: 3600',
      'access:',
      "  - match: '**'",
      '    pull: [authenticated]',
      '',
    ].join('\n'),
  );
  const server = await startDerrick({
    dataDir: fixtures.dataDir,
    mode: 'redirect',
    redirectUrl: options.redirectUrl,
    config,
    name: 'derrick (redirect, login)',
    ...(options.workers === undefined ? {} : { workers: options.workers }),
  });
  const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  const answer = await request(
    `${server.url}/auth/token?service=${SERVICE}&scope=repository:${options.repository}:pull`,
    { headers: { authorization: basic } },
  );
  if (answer.status !== 200)
    throw new Error(`derrick's token endpoint answered ${answer.status}: ${answer.body.toString()}`);
  const { token } = JSON.parse(answer.body.toString()) as { token: string };
  return { server, basic, bearer: `Bearer ${token}` };
}

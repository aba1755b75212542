/**
 * curl as a client of a proxy in front of derrick (nginx, Apache): the status, every header as sent (names
 * lower-cased, repeated ones kept apart, so a test can see a header doubled by the proxy) and the body.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { execute } from './cli.ts';

export interface Curled {
  status: number;
  headers: Map<string, string[]>;
  body: Buffer;
  /** The header block as received, for messages. */
  raw: string;
}

let counter = 0;

/** `curl -s -D - <args> <url>`, its body in a file of `scratchDir` (removed after reading). */
export async function curl(url: string, args: string[], scratchDir: string): Promise<Curled> {
  const bodyFile = path.join(scratchDir, `curl-body-${++counter}`);
  const result = await execute('curl', ['-s', '-D', '-', '-o', bodyFile, ...args, url]);
  assert.equal(result.code, 0, `curl ${url}: ${result.stderr}`);
  const status = /^HTTP\/[\d.]+ (\d{3})/.exec(result.stdout);
  assert.ok(status, result.stdout);
  const headers = new Map<string, string[]>();
  for (const line of result.stdout.split(/\r?\n/).slice(1)) {
    const colon = line.indexOf(':');
    if (colon < 1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  let body = Buffer.alloc(0);
  try {
    body = readFileSync(bodyFile);
    rmSync(bodyFile);
  } catch {
    // HEAD, or an empty answer: curl wrote no file
  }
  return { status: Number(status[1]), headers, body, raw: result.stdout };
}

/** The one value of a header; a repeated header fails (a proxy must not add a second one beside derrick's). */
export function one(answer: Curled, name: string): string | undefined {
  const values = answer.headers.get(name);
  if (values === undefined) return undefined;
  assert.equal(values.length, 1, `${name} once:\n${answer.raw}`);
  return values[0];
}

/** An OCI error answered by derrick and passed on by the proxy: its status, API version header and JSON body. */
export function assertDerrickError(answer: Curled, status: number, code: string): void {
  assert.equal(answer.status, status, answer.raw);
  assert.equal(one(answer, 'docker-distribution-api-version'), 'registry/2.0', 'the answer is derrick’s');
  assert.match(one(answer, 'content-type') ?? '', /^application\/json/);
  const body = JSON.parse(answer.body.toString()) as { errors: { code: string }[] };
  assert.equal(body.errors[0]?.code, code);
  assert.equal(answer.headers.get('x-accel-redirect'), undefined);
  assert.equal(answer.headers.get('x-sendfile'), undefined);
}

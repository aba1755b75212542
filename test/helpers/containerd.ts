/**
 * A containerd daemon of the test's own — its root, state and socket under a directory the test gives, the CRI
 * plugin off — and `ctr` against it, for end-to-end pulls through containerd's docker resolver (the code Kubernetes
 * nodes pull with).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { collectOutput, type RunResult } from './cli.ts';
import { exited, waitForExit } from './processes.ts';

export interface Containerd {
  /** `ctr --address <socket> --namespace derrick-test <args>`; resolves whatever its exit code. */
  ctr(args: string[]): Promise<RunResult>;
  /** The digests in the content store. */
  storedDigests(): Promise<string[]>;
  /** Empties the content store. */
  removeContent(): Promise<void>;
  /** SIGTERM (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/** Starts containerd with everything under `dir` (created), and waits for its socket to answer. */
export async function startContainerd(dir: string): Promise<Containerd> {
  mkdirSync(dir, { recursive: true });
  const socket = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  writeFileSync(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const ctr = (args: string[]): Promise<RunResult> =>
    collectOutput(
      spawn('ctr', ['--address', socket, '--namespace', 'derrick-test', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
  const stop = async (): Promise<void> => {
    if (exited(child)) return;
    child.kill('SIGTERM');
    if (!(await waitForExit(child, 10_000))) child.kill('SIGKILL');
  };
  const storedDigests = async (): Promise<string[]> => {
    const listed = await ctr(['content', 'ls', '--quiet']);
    assert.equal(listed.code, 0, listed.stderr);
    return listed.stdout.split('\n').filter((line) => line.startsWith('sha256:'));
  };
  const removeContent = async (): Promise<void> => {
    const digests = await storedDigests();
    if (digests.length > 0) assert.equal((await ctr(['content', 'rm', ...digests])).code, 0);
  };
  for (let attempt = 0; attempt < 200; attempt++) {
    if (exited(child)) throw new Error(`containerd exited before serving:\n${log}`);
    if (existsSync(socket) && (await ctr(['version'])).code === 0)
      return { ctr, storedDigests, removeContent, stop };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`containerd did not answer on ${socket}:\n${log}`);
}

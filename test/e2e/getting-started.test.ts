/**
 * docs/getting-started.md, run as a reader would run it: every ```sh block, in order, in one bash, in a fresh
 * directory, each block's output checked against the ```output block after it (test/helpers/guide.ts has the
 * conventions). One test per section of the guide, so a failure names the section and the line of the block.
 *
 * What the test provides around the guide, and nothing else:
 * - The checkout: the files of this one (tracked and untracked, not git-ignored; what `git clone` gives, plus
 *   uncommitted changes) copied to `<work>/derrick`, where the guide's install block finds it. `npm ci` runs for
 *   real (preferring npm's cache: there may be no network) and `npm install -g .` installs into a prefix of the
 *   test's own (NPM_CONFIG_PREFIX), first on PATH, so every later `derrick` is the installed one.
 * - A `docker` that runs podman (what Debian's podman-docker installs): there is no Docker engine here.
 * - podman's and skopeo's configuration in the test's directory: vfs storage, cgroupfs, no events log, no
 *   search registries, no stored logins (HOME, XDG_* and CONTAINERS_* point there), so nothing on the host is
 *   read or changed.
 * - Free ports for the guide's fixed addresses (ADDRESSES below), since tests run in parallel: every command and
 *   every expected line is run and checked with these substituted.
 * Every process the guide starts is in the shell's process group, and stopped with it at the end, also on failure.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, tempDir } from '../helpers/cli.ts';
import { containersClientConfig } from '../helpers/containers.ts';
import {
  checkOutput,
  GuideShell,
  runGuideBlock,
  parseGuide,
  type GuideBlock,
  type GuideSection,
} from '../helpers/guide.ts';
import { freePort } from '../helpers/nginx.ts';

const GUIDE = path.join(REPO_ROOT, 'docs', 'getting-started.md');
const GUIDE_NAME = 'docs/getting-started.md';
/** A safety net for one block (npm ci builds the project); never reached when things work. */
const BLOCK_TIMEOUT_MS = 180_000;

const sections: GuideSection[] = parseGuide(readFileSync(GUIDE, 'utf8'), GUIDE_NAME);

const temp = tempDir('derrick-e2e-guide-');
// nginx, started as root, runs its workers as nobody: the directories it works in must be searchable.
chmodSync(temp.dir, 0o755);
const work = path.join(temp.dir, 'work');
let shell: GuideShell | undefined;
/** The guide's fixed addresses → the free ones the commands really use. */
let ADDRESSES: Record<string, string> = {};
let failedSection: string | undefined;

/** Copies the checkout's files (tracked and untracked, not ignored) to `destination`, as a clone would have them. */
function copyCheckout(destination: string): void {
  const listing = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const file of new Set(listing.split('\0').filter((name) => name !== ''))) {
    const source = path.join(REPO_ROOT, file);
    if (!existsSync(source) || !lstatSync(source).isFile()) continue; // deleted, or a submodule/symlink
    mkdirSync(path.dirname(path.join(destination, file)), { recursive: true });
    copyFileSync(source, path.join(destination, file));
  }
}

/** The environment of a reader with a fresh account: no DERRICK_* or npm_* settings from whoever runs the test. */
function readerEnvironment(home: string, bin: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!/^(derrick_|npm_|xdg_|containers_|registry_auth_file$)/i.test(key)) env[key] = value;
  const config = containersClientConfig(path.join(temp.dir, 'containers'));
  // podman's global flags for this machine (no systemd, no journald), as configuration instead of flags.
  writeFileSync(
    config.env.CONTAINERS_CONF ?? '',
    `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "${path.join(temp.dir, 'containers', 'tmp')}"\n`,
  );
  const userContainers = path.join(home, '.config', 'containers');
  mkdirSync(userContainers, { recursive: true });
  copyFileSync(config.policy, path.join(userContainers, 'policy.json'));
  const runtime = path.join(temp.dir, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  return {
    ...env,
    ...config.env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_RUNTIME_DIR: runtime,
    PATH: [...bin, process.env.PATH ?? '/usr/bin:/bin'].join(':'),
    NPM_CONFIG_PREFIX: path.join(temp.dir, 'npm-prefix'),
    // The runner's npm cache and settings, so that `npm ci` works offline when the cache has the packages.
    NPM_CONFIG_CACHE: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm'),
    NPM_CONFIG_USERCONFIG: path.join(os.homedir(), '.npmrc'),
    NPM_CONFIG_PREFER_OFFLINE: 'true',
    NPM_CONFIG_AUDIT: 'false',
    NPM_CONFIG_FUND: 'false',
    NPM_CONFIG_UPDATE_NOTIFIER: 'false',
  };
}

before(async () => {
  ADDRESSES = {
    '127.0.0.1:5000': `127.0.0.1:${await freePort()}`,
    '127.0.0.1:8080': `127.0.0.1:${await freePort()}`,
  };
  mkdirSync(work);
  copyCheckout(path.join(work, 'derrick'));
  const shims = path.join(temp.dir, 'shims');
  mkdirSync(shims);
  writeFileSync(path.join(shims, 'docker'), '#!/bin/sh\nexec podman "$@"\n', { mode: 0o755 });
  const home = path.join(temp.dir, 'home');
  const env = readerEnvironment(home, [path.join(temp.dir, 'npm-prefix', 'bin'), shims]);
  const scripts = path.join(temp.dir, 'blocks');
  mkdirSync(scripts);
  shell = new GuideShell({ cwd: work, env, scriptDir: scripts });
});

after(async () => {
  await shell?.stop();
  temp.cleanup();
});

describe('the guide’s conventions', () => {
  test('an output line the commands did not print, or printed out of order, fails the check', () => {
    const printed = 'published a:1 sha256:abc\nsummary\tline\n';
    assert.equal(checkOutput('published a:1 sha256:…\nsummary line', printed), undefined);
    assert.match(checkOutput('published a:2 sha256:…', printed) ?? '', /published a:2/);
    assert.match(checkOutput('summary line\npublished …', printed) ?? '', /published/);
  });

  test('a shell block that is not ```sh, or a server that is not last or names no address, is refused', () => {
    assert.throws(() => parseGuide('## s\n```bash\nls\n```\n'), /must be ```sh/);
    assert.throws(() => parseGuide('## s\n```sh\nderrick serve &\n```\n'), /name the address/);
    assert.throws(
      () => parseGuide('## s\n```sh\nderrick serve --listen 127.0.0.1:5000 &\nls\n```\n'),
      /the block's last command/,
    );
    assert.throws(() => parseGuide('## s\n```output\nx\n```\n'), /must follow a command block/);
  });

  test('the guide has command blocks, and the ones with output shown are checked', () => {
    const blocks = sections.flatMap((section) => section.blocks);
    assert.ok(blocks.length >= 10, `only ${blocks.length} command blocks`);
    assert.ok(blocks.filter((block) => block.expected !== undefined).length >= 8);
  });
});

/** Runs one command block of the guide (test/helpers/guide.ts). */
function runBlock(session: GuideShell, block: GuideBlock): Promise<void> {
  return runGuideBlock(session, block, { name: GUIDE_NAME, places: ADDRESSES, timeoutMs: BLOCK_TIMEOUT_MS });
}

describe('docs/getting-started.md, run from an empty directory', () => {
  for (const section of sections) {
    test(`“${section.title}”: every command runs and prints what the guide shows`, async () => {
      assert.equal(failedSection, undefined, `an earlier section failed: “${failedSection ?? ''}”`);
      const session = shell;
      assert.ok(session, 'the shell did not start');
      try {
        for (const block of section.blocks) await runBlock(session, block);
      } catch (error) {
        failedSection = section.title;
        throw error;
      }
    });
  }
});

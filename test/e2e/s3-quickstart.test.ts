/**
 * docs/storage-quickstart.md, run as a reader would run it: every ```sh block, in order, in one bash, each block's
 * output checked against the ```output block after it (test/helpers/guide.ts has the conventions), against the
 * test S3 server (Ceph RGW, scripts/s3.sh). One test per section, so a failure names the section and the line.
 *
 * What the test provides around the guide, and nothing else:
 * - A `derrick` on PATH that runs this checkout's CLI from source, and a working directory where `demo/hello` is
 *   the checkout's demo image (the guide runs in the checkout).
 * - The guide's placeholders replaced by the real ones, in commands and expected output alike: the endpoint,
 *   the credentials, a fresh bucket (deleted afterwards) for `derrick-quickstart`, free ports for the addresses.
 * - skopeo's configuration in the test's directory (no search registries, no stored logins, any image accepted),
 *   and no AWS_* variables of the runner's own: the guide's exports are all derrick gets.
 * Every process the guide starts is in the shell's process group, and stopped with it at the end, also on failure.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, REPO_ROOT, tempDir, TSX } from '../helpers/cli.ts';
import { containersClientConfig } from '../helpers/containers.ts';
import { GuideShell, runGuideBlock, parseGuide, type GuideBlock } from '../helpers/guide.ts';
import { freePort } from '../helpers/nginx.ts';
import { freshBucket, s3Env } from '../helpers/s3.ts';

const GUIDE = path.join(REPO_ROOT, 'docs', 'storage-quickstart.md');
const GUIDE_NAME = 'docs/storage-quickstart.md';
/** A safety net for one block; never reached when things work. */
const BLOCK_TIMEOUT_MS = 60_000;

const sections = parseGuide(readFileSync(GUIDE, 'utf8'), GUIDE_NAME);

const temp = tempDir('derrick-e2e-s3-guide-');
let shell: GuideShell | undefined;
/** The guide's placeholders → what the commands really use. */
let PLACES: Record<string, string> = {};
let failedSection: string | undefined;

const bucket = await freshBucket({
  after: (cleanup) =>
    after(async () => {
      await cleanup?.(undefined as never, () => undefined);
    }),
});

before(async () => {
  const s3 = await s3Env();
  PLACES = {
    'http://127.0.0.1:9000': s3.AWS_ENDPOINT_URL,
    QUICKSTARTACCESSKEY: s3.AWS_ACCESS_KEY_ID,
    'quickstart-secret-key': s3.AWS_SECRET_ACCESS_KEY,
    'AWS_REGION=us-east-1': `AWS_REGION=${s3.AWS_REGION}`,
    'derrick-quickstart': bucket,
    '127.0.0.1:5000': `127.0.0.1:${await freePort()}`,
    '127.0.0.1:5001': `127.0.0.1:${await freePort()}`,
  };
  const bin = path.join(temp.dir, 'bin');
  mkdirSync(bin);
  writeFileSync(
    path.join(bin, 'derrick'),
    `#!/bin/sh\nexec '${process.execPath}' --import '${TSX}' '${CLI}' "$@"\n`,
    { mode: 0o755 },
  );
  const work = path.join(temp.dir, 'work');
  mkdirSync(work);
  symlinkSync(path.join(REPO_ROOT, 'demo'), path.join(work, 'demo'));
  const home = path.join(temp.dir, 'home');
  const config = containersClientConfig(path.join(temp.dir, 'containers'));
  mkdirSync(path.join(home, '.config', 'containers'), { recursive: true });
  copyFileSync(config.policy, path.join(home, '.config', 'containers', 'policy.json'));
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (!/^(aws_|derrick_|containers_|registry_auth_file$)/i.test(key)) env[key] = value;
  const scripts = path.join(temp.dir, 'blocks');
  mkdirSync(scripts);
  shell = new GuideShell({
    cwd: work,
    env: { ...env, ...config.env, HOME: home, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    scriptDir: scripts,
  });
});

after(async () => {
  await shell?.stop();
  temp.cleanup();
});

/** Runs one command block of the guide (test/helpers/guide.ts). */
function runBlock(session: GuideShell, block: GuideBlock): Promise<void> {
  return runGuideBlock(session, block, { name: GUIDE_NAME, places: PLACES, timeoutMs: BLOCK_TIMEOUT_MS });
}

describe('docs/storage-quickstart.md, run against a real S3 server', () => {
  test('the guide has command blocks for every step, and the ones with output shown are checked', () => {
    const blocks = sections.flatMap((section) => section.blocks);
    assert.ok(sections.length >= 4, `only ${sections.length} sections`);
    assert.ok(blocks.filter((block) => block.expected !== undefined).length >= 4);
    assert.ok(blocks.some((block) => block.commands.includes('derrick copy-tree')));
  });

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

/**
 * Where the S3 client's settings come from: the standard AWS chain, with derrick's defaults where the chain has
 * nothing (region us-east-1; path-style addressing when an endpoint is set, as local stores need).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { makeClients } from '../../../src/store/s3/s3-client.ts';

const VARIABLES = [
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_PROFILE',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_ENDPOINT_URL',
  'AWS_ENDPOINT_URL_S3',
];
const saved = new Map(VARIABLES.map((name) => [name, process.env[name]]));
const home = mkdtempSync(path.join(os.tmpdir(), 'derrick-s3-client-'));

beforeEach(() => {
  for (const name of VARIABLES) Reflect.deleteProperty(process.env, name);
  // No shared files of the developer's own: an empty config.
  process.env.AWS_CONFIG_FILE = path.join(home, 'missing-config');
  process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(home, 'missing-credentials');
});
after(() => {
  for (const [name, value] of saved) {
    if (value === undefined) Reflect.deleteProperty(process.env, name);
    else process.env[name] = value;
  }
  rmSync(home, { recursive: true, force: true });
});

async function settings(options: Parameters<typeof makeClients>[0] = {}) {
  const { client, signer } = await makeClients(options);
  try {
    return {
      region: await client.config.region(),
      pathStyle: client.config.forcePathStyle,
      maxAttempts: await client.config.maxAttempts(),
      separateSigner: signer !== client,
    };
  } finally {
    client.destroy();
    signer.destroy();
  }
}

describe('S3 client settings', () => {
  test('with nothing configured: region us-east-1, virtual-host addressing (AWS), 5 attempts', async () => {
    assert.deepEqual(await settings(), {
      region: 'us-east-1',
      pathStyle: false,
      maxAttempts: 5,
      separateSigner: false,
    });
  });

  test('AWS_REGION, or the region of AWS_PROFILE in the shared config file, is used', async () => {
    process.env.AWS_REGION = 'eu-west-3';
    assert.equal((await settings()).region, 'eu-west-3');
    delete process.env.AWS_REGION;
    // A file of its own: the SDK caches what it read per file name.
    process.env.AWS_CONFIG_FILE = path.join(home, 'config');
    writeFileSync(process.env.AWS_CONFIG_FILE, '[profile site]\nregion = ap-south-1\n');
    process.env.AWS_PROFILE = 'site';
    assert.equal((await settings()).region, 'ap-south-1');
  });

  test('an endpoint (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 or the option) turns path-style on, unless told otherwise', async () => {
    process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:9000';
    assert.equal((await settings()).pathStyle, true);
    assert.equal((await settings({ pathStyle: false })).pathStyle, false);
    delete process.env.AWS_ENDPOINT_URL;
    process.env.AWS_ENDPOINT_URL_S3 = 'http://127.0.0.1:9000';
    assert.equal((await settings()).pathStyle, true);
    delete process.env.AWS_ENDPOINT_URL_S3;
    assert.equal((await settings({ endpoint: 'http://127.0.0.1:9000' })).pathStyle, true);
  });

  test('explicit options win, and presignEndpoint gets a signer of its own', async () => {
    process.env.AWS_REGION = 'eu-west-3';
    assert.deepEqual(
      await settings({ region: 'us-west-2', maxAttempts: 2, presignEndpoint: 'https://cdn.example' }),
      {
        region: 'us-west-2',
        pathStyle: false,
        maxAttempts: 2,
        separateSigner: true,
      },
    );
  });
});

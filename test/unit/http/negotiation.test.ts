import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { accepts, parseAccept } from '../../../src/http/accept.ts';
import { craneManifestPath } from '../../../src/http/crane.ts';
import { redirectUrl, signUrl } from '../../../src/http/redirect.ts';
import type { PulpCompat } from '../../../src/store/record.ts';

const LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const S2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const D = (n: string): string => `sha256:${n.repeat(64)}`;

describe('Accept', () => {
  test('types are lower-cased, parameters dropped, q=0 refused', () => {
    const accepted = parseAccept(`${S2}; q=0.5, Application/Vnd.OCI.Image.Index.v1+JSON, ${LIST};q=0`);
    assert.ok(accepts(accepted, S2));
    assert.ok(accepts(accepted, OCI_INDEX));
    assert.ok(!accepts(accepted, LIST));
  });
  test('*/* accepts everything but what q=0 refuses; several headers are joined', () => {
    const accepted = parseAccept(['*/*', `${OCI_INDEX};q=0`]);
    assert.ok(accepts(accepted, LIST));
    assert.ok(!accepts(accepted, OCI_INDEX));
  });
  test('no header accepts no manifest list (the registry convention for old clients)', () => {
    const accepted = parseAccept(undefined);
    assert.ok(accepted.absent);
    assert.ok(!accepts(accepted, LIST));
  });
});

describe("Crane's decision table (Pulp 2 records)", () => {
  const pulp = (version: 2 | 3 | 4): PulpCompat => ({
    version,
    repositoryId: 'id',
    url: 'https://cdn/x/',
    schema2: new Set(['s2tag', D('2')]),
    manifestLists: new Set(['multi']),
    amd64Tags: new Map([
      ['multi', { digest: D('a'), schemaVersion: 2 }],
      ['old', { digest: D('b'), schemaVersion: 1 }],
      ['other', { digest: D('c'), schemaVersion: 2 }],
    ]),
  });
  const withTypes = (...types: string[]) => parseAccept(types.join(', '));
  const cases: [string, 2 | 3 | 4, string, string[], string][] = [
    ['1: ML accepted and ref in manifest_list_data → list', 4, 'multi', [LIST, S2], 'manifests/list/multi'],
    ['2: amd64 tag, S2 accepted → manifests/<v>/<d>', 4, 'multi', [S2], `manifests/2/${D('a')}`],
    ['2: amd64 tag, S2 not accepted, v = 1 → manifests/1/<d>', 4, 'old', [], `manifests/1/${D('b')}`],
    ['2: amd64 tag, S2 not accepted, v = 2 → manifests/1/<ref>', 4, 'other', [], 'manifests/1/other'],
    ['3: S2 accepted and ref in schema2_data → manifests/2/<ref>', 4, 's2tag', [S2], 'manifests/2/s2tag'],
    ['3: a digest in schema2_data, S2 accepted', 3, D('2'), [S2], `manifests/2/${D('2')}`],
    ['4: S2 not accepted → manifests/1/<ref>', 3, 's2tag', [LIST], 'manifests/1/s2tag'],
    ['4: ref unknown → manifests/1/<ref>', 4, 'nothing', [S2, LIST], 'manifests/1/nothing'],
    [
      'version 3 knows no lists: ML accepted, ref listed only in v4 data',
      3,
      'multi',
      [LIST, S2],
      'manifests/1/multi',
    ],
    ['version 2: manifests/<ref>', 2, 's2tag', [S2, LIST], 'manifests/s2tag'],
  ];
  for (const [what, version, ref, types, expected] of cases) {
    test(what, () => assert.equal(craneManifestPath(pulp(version), ref, withTypes(...types)), expected));
  }
});

describe('redirect URLs', () => {
  const token = { secret: '0a1b2c3d', ttlSeconds: 300, param: '_auth_', algorithm: 'sha256' as const };

  test('signing follows the Akamai token 2.0 form Crane used', () => {
    const url = signUrl('https://cdn.example.com/repo/blobs/sha256:x', token, 1000);
    const expectedHmac = createHmac('sha256', Buffer.from('0a1b2c3d', 'hex'))
      .update('exp=1300~url=/repo/blobs/sha256:x')
      .digest('hex');
    assert.equal(url, `https://cdn.example.com/repo/blobs/sha256:x?_auth_=exp=1300~hmac=${expectedHmac}`);
  });

  test('a URL with a query gets the token after &', () => {
    assert.match(
      signUrl('https://cdn/x?a=1', { ...token, algorithm: 'md5' }, 0),
      /^https:\/\/cdn\/x\?a=1&_auth_=exp=300~hmac=[a-f0-9]{32}$/,
    );
  });

  test('url_match/url_replace rewrite before signing; trailing slashes of the base are folded', () => {
    const config = { status: 302 as const, urlMatch: 'origin.example.com', urlReplace: 'cdn.example.com' };
    assert.equal(
      redirectUrl(config, 'https://origin.example.com/base/', 'blobs/sha256:y'),
      'https://cdn.example.com/base/blobs/sha256:y',
    );
  });
});

/**
 * `Accept`, `Range` and `If-None-Match`, generated: lists and ranges built by the RFC 9110 grammar are read as the
 * RFC says; any other header text never throws and never yields a range outside the blob.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { accepts, parseAccept } from '../../src/http/accept.ts';
import { etagMatches, parseRange } from '../../src/http/send-file.ts';
import { fc, holds } from '../helpers/property.ts';
import { anyText, digest } from './grammar.ts';

const file = import.meta.filename;

const tokenChars = fc.constantFrom(
  ...Array.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+-'),
);
const token = fc.string({ unit: tokenChars, minLength: 1, maxLength: 12 });
const ows = fc.constantFrom('', ' ', '  ', '\t');

/** A media type as registries see them, or an arbitrary `token/token`, in any letter case. */
const mediaType = fc.oneof(
  fc.constantFrom(
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'Application/Vnd.OCI.Image.Index.v1+JSON',
  ),
  fc.tuple(token, token).map(([type, subtype]) => `${type}/${subtype}`),
);

/** RFC 9110 qvalue: `0[.ddd]` or `1[.000]`. */
const qvalue = fc.oneof(
  fc.constantFrom('0', '0.0', '0.000', '1', '1.0', '1.000'),
  fc.integer({ min: 0, max: 999 }).map((n) => `0.${String(n).padStart(3, '0')}`.replace(/0+$/, '') || '0'),
);

interface Entry {
  type: string;
  params: [string, string][];
  q: string | undefined;
}

const entry: fc.Arbitrary<Entry> = fc.record({
  type: fc.oneof({ weight: 6, arbitrary: mediaType }, { weight: 1, arbitrary: fc.constant('*/*') }),
  params: fc.array(
    fc.tuple(
      token.filter((key) => key.toLowerCase() !== 'q'),
      token,
    ),
    { maxLength: 2 },
  ),
  q: fc.option(qvalue, { nil: undefined }),
});

function render(entries: Entry[], space: string): string {
  return entries
    .map(({ type, params, q }) => {
      const all = [...params, ...(q === undefined ? [] : [['q', q] as [string, string]])];
      return [type, ...all.map(([key, value]) => `${key}=${value}`)].join(`${space};${space}`);
    })
    .join(`${space},${space}`);
}

describe('Accept (generated)', () => {
  test('a list built by the grammar accepts exactly the types it names with q > 0 and no q=0 for them', async () => {
    await holds(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 6 }), ows, (entries, space) => {
        const accepted = parseAccept(render(entries, space));
        const positive = (e: Entry): boolean => e.q === undefined || Number(e.q) > 0;
        const refused = new Set(entries.filter((e) => !positive(e)).map((e) => e.type.toLowerCase()));
        const any = entries.some((e) => e.type === '*/*' && positive(e)) && !refused.has('*/*');
        assert.equal(accepted.absent, false);
        for (const { type } of entries) {
          const lower = type.toLowerCase();
          if (lower === '*/*') continue;
          const named = entries.some((e) => e.type.toLowerCase() === lower && positive(e));
          assert.equal(accepts(accepted, lower), !refused.has(lower) && (named || any), lower);
        }
      }),
      { file },
    );
  });

  test('any header text or list of them is read without throwing, into lower-case types never both accepted and refused', async () => {
    await holds(
      fc.property(fc.oneof(anyText, fc.array(anyText, { maxLength: 4 })), (header) => {
        const accepted = parseAccept(header);
        for (const type of accepted.types) {
          assert.equal(type, type.trim().toLowerCase());
          assert.ok(type !== '' && !type.includes(','));
          assert.ok(!accepted.refused.has(type));
        }
      }),
      { file },
    );
  });
});

/** What RFC 9110 §14.1.2 makes of one byte-range-spec over `size` bytes (undefined: serve the whole). */
function expectedRange(
  first: bigint | undefined,
  last: bigint | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | 'invalid' | undefined {
  const length = BigInt(size);
  if (first === undefined) {
    if (last === undefined) return undefined;
    // "a suffix-range with a non-zero suffix-length" is satisfiable; a zero-length representation has no
    // byte a 206 could name, so it is sent whole.
    if (last === 0n) return 'unsatisfiable';
    if (size === 0) return undefined;
    return { start: Number(last >= length ? 0n : length - last), end: size - 1 };
  }
  if (last !== undefined && last < first) return 'invalid';
  if (first >= length) return 'unsatisfiable';
  return { start: Number(first), end: Number(last !== undefined && last < length ? last : length - 1n) };
}

const size = fc.oneof(fc.constant(0), fc.constant(1), fc.nat(5000), fc.nat());
/** A position as a client writes it: decimal digits, small or far beyond 2^53, with leading zeros at times. */
const position = fc.tuple(
  fc.oneof(fc.bigInt({ min: 0n, max: 6000n }), fc.bigInt({ min: 0n, max: 10n ** 25n })),
  fc.constantFrom('', '0', '000'),
);

describe('Range (generated)', () => {
  test('one byte range built by the grammar is the range RFC 9110 gives, within the blob', async () => {
    await holds(
      fc.property(
        fc.option(position, { nil: undefined }),
        fc.option(position, { nil: undefined }),
        size,
        ows,
        (first, last, bytes, space) => {
          const text = (p: [bigint, string] | undefined): string => (p ? `${p[1]}${p[0]}` : '');
          const header = `${space}bytes=${text(first)}-${text(last)}${space}`;
          const expected = expectedRange(first?.[0], last?.[0], bytes);
          const actual = parseRange(header, bytes);
          if (expected === 'invalid') assert.ok(actual === 'unsatisfiable' || actual === undefined);
          else assert.deepEqual(actual, expected, header);
        },
      ),
      { file },
    );
  });

  test('any Range header gives the whole blob, 416, or a range of bytes the blob has', async () => {
    const header = fc.oneof(
      anyText,
      fc
        .array(fc.oneof(fc.constantFrom('bytes=', '-', ',', ' ', '0', '1', '9', 'e', '+', '.'), anyText), {
          maxLength: 8,
        })
        .map((parts) => parts.join('')),
    );
    await holds(
      fc.property(header, size, (text, bytes) => {
        const actual = parseRange(text, bytes);
        if (actual === undefined || actual === 'unsatisfiable') return;
        assert.ok(Number.isSafeInteger(actual.start) && Number.isSafeInteger(actual.end), text);
        assert.ok(0 <= actual.start && actual.start <= actual.end && actual.end < bytes, text);
      }),
      { file },
    );
  });
});

describe('If-None-Match (generated)', () => {
  test('any header text is read without throwing, and a list naming the ETag, weak or strong, matches it', async () => {
    await holds(
      fc.property(
        anyText,
        digest,
        fc.array(anyText, { maxLength: 3 }),
        fc.boolean(),
        (text, value, others, weak) => {
          const etag = `"${value}"`;
          etagMatches(text, etag);
          const list = [...others.map((other) => other.replaceAll(',', '')), `${weak ? 'W/' : ''}${etag}`];
          assert.equal(etagMatches(list.join(', '), etag), true);
        },
      ),
      { file },
    );
  });
});

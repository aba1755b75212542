/**
 * Arbitraries for the distribution-spec grammar (names, tags, digests) and for hostile text: what the property
 * files generate valid input from, and the pieces attackers build paths and headers with.
 */
import { fc } from '../helpers/property.ts';

/** One character of `chars`. */
const oneOf = (chars: string): fc.Arbitrary<string> => fc.constantFrom(...Array.from(chars));

const lowerAlnum = fc.string({
  unit: oneOf('abcdefghijklmnopqrstuvwxyz0123456789'),
  minLength: 1,
});
const separator = fc.oneof(
  fc.constant('.'),
  fc.constant('_'),
  fc.constant('__'),
  fc.integer({ min: 1, max: 3 }).map((n) => '-'.repeat(n)),
);

/** One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. */
export const nameComponent = fc
  .tuple(lowerAlnum, fc.array(fc.tuple(separator, lowerAlnum), { maxLength: 4 }))
  .map(([first, rest]) => first + rest.map(([sep, part]) => sep + part).join(''));

/** A repository name by the grammar, at most 255 characters; some components are the endpoint words. */
export const repositoryName = fc
  .array(
    fc.oneof(
      { weight: 5, arbitrary: nameComponent },
      { weight: 1, arbitrary: fc.constantFrom('manifests', 'blobs', 'tags', 'list', 'referrers', 'v2') },
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((parts) => parts.join('/'))
  .filter((name) => name.length <= 255);

const tagFirst = oneOf('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_');
const tagRest = oneOf('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-');

/** A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, including ones that are names of Object.prototype members. */
export const tag = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(tagFirst, fc.string({ unit: tagRest, maxLength: 127 })).map(([a, b]) => a + b),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'latest', 'list'),
  },
);

const hex = (length: number): fc.Arbitrary<string> =>
  fc.string({ unit: oneOf('0123456789abcdef'), minLength: length, maxLength: length });

/** A digest derrick accepts: sha256 or sha512 with the right number of lower-case hex digits. */
export const digest = fc.oneof(
  { weight: 4, arbitrary: hex(64).map((h) => `sha256:${h}`) },
  { weight: 1, arbitrary: hex(128).map((h) => `sha512:${h}`) },
);

/** Pieces that paths and headers are attacked with. */
export const HOSTILE_PIECES = [
  '/',
  '//',
  '..',
  '.',
  '../',
  '%2e%2e',
  '%2E%2E',
  '%2f',
  '%2F',
  '%00',
  '%',
  '\0',
  '\\',
  '\n',
  '\r\n',
  ' ',
  '\t',
  ':',
  '@',
  '?',
  '#',
  '~',
  'A',
  'é',
  '\u0130', // İ, whose lower case is two code points
  '\u212a', // the Kelvin sign, whose lower case is k
  '\ufeff',
  '\ud800', // a lone surrogate
  '😀',
  'manifests',
  'blobs',
  'tags',
  'list',
  'referrers',
  '_catalog',
  'v2',
  'sha256:',
  'sha512:',
  'latest',
  '-',
  '_',
  '__',
  '0'.repeat(300),
];

/** Text built from hostile pieces, valid grammar pieces and arbitrary (full unicode) strings. */
export const hostileText = fc
  .array(
    fc.oneof(
      fc.constantFrom(...HOSTILE_PIECES),
      nameComponent,
      tag,
      digest,
      fc.string({ maxLength: 8 }),
      fc.string({ unit: 'binary', maxLength: 8 }),
    ),
    { maxLength: 12 },
  )
  .map((pieces) => pieces.join(''));

/** Any string at all: arbitrary unicode, hostile compositions, very long ones. */
export const anyText = fc.oneof(
  { weight: 3, arbitrary: hostileText },
  { weight: 1, arbitrary: fc.string({ unit: 'binary' }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme' }) },
  { weight: 1, arbitrary: fc.string({ minLength: 200, maxLength: 5000 }) },
);

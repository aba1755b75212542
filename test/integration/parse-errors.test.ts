/**
 * Mistakes on the command line, for every command: one line in derrick's format (what, for which command, a
 * "did you mean" when a name is close, where the options are), exit status 2, and nothing done.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runDerrick } from '../helpers/cli.ts';

const cases: [string, string[], string][] = [
  [
    'an unknown option close to one of the command’s',
    ['serve', '--lsiten', '127.0.0.1:0'],
    'unknown option --lsiten for derrick serve (did you mean --listen?); see derrick serve --help',
  ],
  [
    'an unknown option given as --flag=value',
    ['gc', '--dry-rn=1'],
    'unknown option --dry-rn for derrick gc (did you mean --dry-run?); see derrick gc --help',
  ],
  [
    'an option of another command',
    ['ls', '--base-url', 'https://cdn.example.com'],
    'unknown option --base-url for derrick ls (--base-url is an option of derrick publish); see derrick ls --help',
  ],
  [
    'an unknown command close to one that exists',
    ['pubish', 'oci:x', 'a'],
    'unknown command pubish (did you mean publish?); see derrick --help',
  ],
  [
    'help for an unknown command',
    ['help', 'unpublsh'],
    'unknown command unpublsh (did you mean unpublish?); see derrick --help',
  ],
  [
    'a missing argument',
    ['publish', 'oci:./layout'],
    'missing <name[:tag]> for derrick publish (usage: derrick publish [options] <source> <name[:tag]...>); see derrick publish --help',
  ],
  [
    'an option without its value',
    ['serve', '--listen'],
    '--listen needs a value (<host:port>) for derrick serve; see derrick serve --help',
  ],
  [
    'an option value its parser refuses',
    ['gc', '--wait', 'soon'],
    '--wait soon for derrick gc: expected a number of seconds ≥ 0; see derrick gc --help',
  ],
  [
    'a value after a boolean flag',
    ['serve', '--access-log', 'false'],
    'unexpected argument false for derrick serve: --access-log takes no value (use --access-log or --no-access-log); see derrick serve --help',
  ],
  [
    'an argument too many',
    ['ls', 'team', 'other'],
    'unexpected argument other for derrick ls (it takes [prefix]); see derrick ls --help',
  ],
];

// No back end: each mistake is refused before any tree is opened (DERRICK_DATA_DIR names none), so these run once.
describe('a mistake on the command line', { concurrency: 4 }, () => {
  for (const [what, args, line] of cases) {
    test(`${what} is one line with exit status 2: derrick ${args.join(' ')}`, async () => {
      const result = await runDerrick(args, {
        env: { DERRICK_DATA_DIR: '/nonexistent/derrick-parse-errors' },
      });
      assert.equal(result.stderr, `derrick: ${line}\n`);
      assert.equal(result.stdout, '');
      assert.equal(result.code, 2);
    });
  }
});

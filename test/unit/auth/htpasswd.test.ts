import assert from 'node:assert/strict';
import { renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { AuthConfigError } from '../../../src/auth/errors.ts';
import { Htpasswd, parseHtpasswd, type HtpasswdLog } from '../../../src/auth/htpasswd.ts';
import { tempDir } from '../../helpers/cli.ts';
import { htpasswdLine } from '../../helpers/pki.ts';

const temp = tempDir('derrick-htpasswd-');
after(() => temp.cleanup());

let counter = 0;
/** A fresh file name in the temp directory. */
function fileName(): string {
  return path.join(temp.dir, `htpasswd-${++counter}`);
}

/** An htpasswd file with these lines (and a trailing newline). */
function htpasswdFile(lines: string[]): string {
  const file = fileName();
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

let stamp = 1_000_000_000;
/**
 * Rewrites `file` in place, then gives it an mtime of its own: file timestamps are only as fine as the kernel's
 * clock tick, and two rewrites of one size within a tick would otherwise look unchanged to stat.
 */
function rewrite(file: string, lines: string[]): void {
  writeFileSync(file, `${lines.join('\n')}\n`);
  stamp += 10;
  utimesSync(file, stamp, stamp);
}

interface Call {
  level: 'error' | 'info';
  object: object;
  message: string;
}

/** A log that records every call. */
function fakeLog(): HtpasswdLog & { calls: Call[]; errors: () => Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    errors: () => calls.filter((call) => call.level === 'error'),
    error: (object, message) => calls.push({ level: 'error', object, message }),
    info: (object, message) => calls.push({ level: 'info', object, message }),
  };
}

/** A bcrypt hash of `password` for `user`, as in the helper's line. */
function hashOf(user: string, password: string): string {
  return htpasswdLine(user, password).slice(user.length + 1);
}

describe('parseHtpasswd', () => {
  test('accepts $2y$, $2b$ and $2a$ bcrypt hashes, skipping comments and blank lines', () => {
    const hash = hashOf('x', 'pw').slice('$2y$'.length);
    const text = [
      '# users of the test registry',
      '',
      `alice:$2y$${hash}`,
      '   ',
      `bob:$2b$${hash}`,
      '  # an indented comment',
      `carol:$2a$${hash}`,
      '',
    ].join('\r\n');
    const users = parseHtpasswd(text, 'users.htpasswd');
    assert.deepEqual(
      [...users],
      [
        ['alice', `$2y$${hash}`],
        ['bob', `$2b$${hash}`],
        ['carol', `$2a$${hash}`],
      ],
    );
  });

  test('an empty file, or one of comments only, has no users', () => {
    assert.equal(parseHtpasswd('', 'f').size, 0);
    assert.equal(parseHtpasswd('# nobody yet\n\n', 'f').size, 0);
  });

  const refused: [string, string, RegExp][] = [
    ['an Apache MD5 ($apr1$) hash', 'alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/', /\$apr1\$/],
    ['an MD5-crypt ($1$) hash', 'alice:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/', /MD5-crypt/],
    ['an unsalted SHA-1 ({SHA}) hash', 'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /\{SHA\}/],
    ['a DES crypt() hash', 'alice:rqXexS6ZhobKA', /DES crypt/],
    [
      'a SHA-256 crypt ($5$) hash',
      'alice:$5$saltsalt$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5',
      /SHA-crypt/,
    ],
    [
      'a SHA-512 crypt ($6$) hash',
      'alice:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/',
      /SHA-crypt/,
    ],
  ];
  for (const [what, line, kind] of refused) {
    test(`refuses ${what} with file, line, kind and the fix`, () => {
      const text = `# header\n\n${htpasswdLine('bob', 'pw')}\n${line}\n`;
      assert.throws(
        () => parseHtpasswd(text, '/etc/derrick/htpasswd'),
        (error: Error) => {
          assert.match(error.message, /^\/etc\/derrick\/htpasswd line 4: user "alice" has /);
          assert.match(error.message, kind);
          assert.match(error.message, /which derrick refuses \(only bcrypt is accepted\)/);
          assert.match(error.message, /htpasswd -B/);
          return true;
        },
      );
    });
  }

  test('refuses a plain-text password with file, line and the fix', () => {
    assert.throws(
      () => parseHtpasswd('alice:secret\n', 'users'),
      (error: Error) => {
        assert.match(error.message, /^users line 1: user "alice" has no bcrypt hash/);
        assert.match(error.message, /htpasswd -B/);
        return true;
      },
    );
  });

  test('refuses a truncated bcrypt hash as not bcrypt', () => {
    const line = htpasswdLine('alice', 'pw').slice(0, -1);
    assert.throws(
      () => parseHtpasswd(line, 'users'),
      /^Error: users line 1: user "alice" has no bcrypt hash/,
    );
  });

  test('refuses a bcrypt hash whose cost bcrypt cannot use (below 04 or above 31), naming file and line', () => {
    const good = htpasswdLine('alice', 'pw');
    for (const cost of ['03', '32', '99']) {
      const text = `${good}\n${good.replace('alice', 'bob').replace('$2y$04$', `$2y$${cost}$`)}\n`;
      assert.throws(() => parseHtpasswd(text, 'users'), /^Error: users line 2: user "bob"/, cost);
    }
  });

  test('refuses a line without a colon, or with an empty user, naming file and line', () => {
    assert.throws(
      () => parseHtpasswd(`${htpasswdLine('bob', 'pw')}\njustaname\n`, 'users'),
      /^Error: users line 2: expected user:hash/,
    );
    assert.throws(
      () => parseHtpasswd(`\n${hashOf('x', 'pw').replace(/^/, ':')}\n`, 'users'),
      /^Error: users line 2: expected user:hash/,
    );
  });

  test('refuses a user that appears twice, naming file and the second line', () => {
    const text = `${htpasswdLine('alice', 'one')}\n# again\n${htpasswdLine('alice', 'two')}\n`;
    assert.throws(() => parseHtpasswd(text, 'users'), /^Error: users line 3: user "alice" appears twice/);
  });
});

/** Runs `body` while counting bcrypt comparisons (the module object htpasswd.ts calls through). */
async function countingCompares(body: () => Promise<void>): Promise<number> {
  const original = bcrypt.compare;
  let calls = 0;
  bcrypt.compare = ((...args: Parameters<typeof original>) => {
    calls++;
    return original(...args);
  }) as typeof original;
  try {
    await body();
  } finally {
    bcrypt.compare = original;
  }
  return calls;
}

describe('Htpasswd', () => {
  test('bcrypt runs once per user and password: parallel first requests share one check, later ones none', async () => {
    const users = new Htpasswd(htpasswdFile([htpasswdLine('alice', 'pw')]), fakeLog());
    const first = await countingCompares(async () => {
      const results = await Promise.all(Array.from({ length: 8 }, () => users.verify('alice', 'pw')));
      assert.deepEqual(results, Array<boolean>(8).fill(true));
    });
    assert.equal(first, 1);
    const later = await countingCompares(async () => {
      for (let i = 0; i < 5; i++) assert.equal(await users.verify('alice', 'pw'), true);
    });
    assert.equal(later, 0);
    const wrong = await countingCompares(async () => {
      assert.equal(await users.verify('alice', 'nope'), false);
      assert.equal(await users.verify('alice', 'nope'), false);
    });
    assert.equal(wrong, 2, 'failures are not remembered: each costs a check (and counts as a failed login)');
  });

  test('verify: the right password, a wrong one, an unknown user', async () => {
    const file = htpasswdFile([htpasswdLine('alice', 'wonderland'), htpasswdLine('bob', 'builder')]);
    const users = new Htpasswd(file, fakeLog());
    assert.equal(users.size, 2);
    assert.equal(await users.verify('alice', 'wonderland'), true);
    assert.equal(await users.verify('bob', 'builder'), true);
    assert.equal(await users.verify('alice', 'builder'), false);
    assert.equal(await users.verify('alice', ''), false);
    assert.equal(await users.verify('mallory', 'wonderland'), false);
  });

  test('verify: a remembered success is not given to another password or user', async () => {
    const file = htpasswdFile([htpasswdLine('alice', 'pw'), htpasswdLine('bob', 'pw')]);
    const users = new Htpasswd(file, fakeLog());
    assert.equal(await users.verify('alice', 'pw'), true);
    assert.equal(await users.verify('alice', 'pw'), true);
    assert.equal(await users.verify('alice', 'pw '), false);
    assert.equal(await users.verify('alice', 'Pw'), false);
    assert.equal(await users.verify('bob', 'pw'), true);
  });

  test('verify: $2y$, $2b$ and $2a$ hashes all check', async () => {
    const hash = hashOf('x', 'secret').slice('$2y$'.length);
    const file = htpasswdFile([`y:$2y$${hash}`, `b:$2b$${hash}`, `a:$2a$${hash}`]);
    const users = new Htpasswd(file, fakeLog());
    for (const user of ['y', 'b', 'a']) {
      assert.equal(await users.verify(user, 'secret'), true, user);
      assert.equal(await users.verify(user, 'public'), false, user);
    }
  });

  test('the file is re-read when it changes: a user added, a password changed, a user removed', async () => {
    const file = htpasswdFile([htpasswdLine('alice', 'one')]);
    const log = fakeLog();
    const users = new Htpasswd(file, log);
    assert.equal(await users.verify('bob', 'builder'), false);

    rewrite(file, [htpasswdLine('alice', 'one'), htpasswdLine('bob', 'builder')]);
    assert.equal(await users.verify('bob', 'builder'), true);
    assert.equal(users.size, 2);

    rewrite(file, [htpasswdLine('alice', 'two'), htpasswdLine('bob', 'builder')]);
    assert.equal(await users.verify('alice', 'one'), false);
    assert.equal(await users.verify('alice', 'two'), true);

    rewrite(file, [htpasswdLine('alice', 'two')]);
    assert.equal(await users.verify('bob', 'builder'), false);
    assert.equal(users.size, 1);

    assert.equal(log.errors().length, 0);
    assert.ok(log.calls.some((call) => call.level === 'info' && /reloaded/.test(call.message)));
  });

  test('a file replaced by rename (as editors and config management do) is re-read', async () => {
    const file = htpasswdFile([htpasswdLine('alice', 'one')]);
    const users = new Htpasswd(file, fakeLog());
    const next = fileName();
    writeFileSync(next, `${htpasswdLine('carol', 'three')}\n`);
    renameSync(next, file);
    assert.equal(await users.verify('carol', 'three'), true);
    assert.equal(await users.verify('alice', 'one'), false);
  });

  test('a remembered success is forgotten when the user’s hash changes', async () => {
    const file = htpasswdFile([htpasswdLine('alice', 'old')]);
    const users = new Htpasswd(file, fakeLog());
    assert.equal(await users.verify('alice', 'old'), true); // now remembered
    rewrite(file, [htpasswdLine('alice', 'new')]);
    assert.equal(await users.verify('alice', 'old'), false);
    assert.equal(await users.verify('alice', 'new'), true);
    // A new hash of the old password (another salt) lets the old password in again.
    rewrite(file, [htpasswdLine('alice', 'old')]);
    assert.equal(await users.verify('alice', 'new'), false);
    assert.equal(await users.verify('alice', 'old'), true);
  });

  test('a broken rewrite keeps the previous users and is logged once, then a good one is read', async () => {
    const file = htpasswdFile([htpasswdLine('alice', 'one')]);
    const log = fakeLog();
    const users = new Htpasswd(file, log);

    rewrite(file, [htpasswdLine('alice', 'two'), 'bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/']);
    assert.equal(await users.verify('alice', 'one'), true);
    assert.equal(await users.verify('alice', 'two'), false);
    assert.equal(await users.verify('bob', 'anything'), false);
    assert.equal(await users.verify('alice', 'one'), true);
    assert.equal(log.errors().length, 1);
    const [error] = log.errors();
    assert.match(error!.message, /not reloaded/);
    assert.deepEqual(Object.keys(error!.object).sort(), ['err', 'file']);
    assert.equal((error!.object as { file: string }).file, file);
    assert.match((error!.object as { err: string }).err, /line 2: user "bob"/);
    assert.equal(users.size, 1);

    rewrite(file, [htpasswdLine('alice', 'two')]);
    assert.equal(await users.verify('alice', 'two'), true);
    assert.equal(await users.verify('alice', 'one'), false);
    assert.equal(log.errors().length, 1);

    // Broken again, differently: that is a new error, logged once more.
    rewrite(file, ['no colon here']);
    assert.equal(await users.verify('alice', 'two'), true);
    assert.equal(await users.verify('alice', 'two'), true);
    assert.equal(log.errors().length, 2);
  });

  test('a file that disappears keeps the previous users and is logged once; it is read again when back', async () => {
    const file = htpasswdFile([htpasswdLine('alice', 'one')]);
    const log = fakeLog();
    const users = new Htpasswd(file, log);
    rmSync(file);
    assert.equal(await users.verify('alice', 'one'), true);
    assert.equal(await users.verify('alice', 'one'), true);
    assert.equal(log.errors().length, 1);
    writeFileSync(file, `${htpasswdLine('bob', 'two')}\n`);
    assert.equal(await users.verify('bob', 'two'), true);
    assert.equal(await users.verify('alice', 'one'), false);
  });

  test('a missing file is an AuthConfigError for auth.htpasswd', () => {
    const missing = path.join(temp.dir, 'no-such-file');
    assert.throws(
      () => new Htpasswd(missing, fakeLog()),
      (error: unknown) => {
        assert.ok(error instanceof AuthConfigError);
        assert.equal(error.key, 'auth.htpasswd');
        assert.match(error.message, /^auth\.htpasswd: .*no-such-file/);
        return true;
      },
    );
  });

  test('an invalid file is an AuthConfigError for auth.htpasswd, or the key given', () => {
    const file = htpasswdFile(['alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=']);
    assert.throws(
      () => new Htpasswd(file, fakeLog()),
      (error: unknown) => {
        assert.ok(error instanceof AuthConfigError);
        assert.equal(error.key, 'auth.htpasswd');
        assert.ok(error.message.startsWith(`auth.htpasswd: ${file} line 1: user "alice"`), error.message);
        assert.match(error.message, /htpasswd -B/);
        return true;
      },
    );
    assert.throws(
      () => new Htpasswd(file, fakeLog(), 'other.key'),
      (error: unknown) => error instanceof AuthConfigError && error.key === 'other.key',
    );
  });
});

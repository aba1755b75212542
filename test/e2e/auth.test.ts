/**
 * End to end: protected repositories, with real clients over real HTTPS. `derrick serve` runs as the real CLI with
 * a YAML configuration file: TLS with a throw-away test CA (clients trust it through --cert-dir, so certificates
 * are really verified), mutual TLS against the same CA, htpasswd users, derrick's own token endpoint (so
 * skopeo and podman go through Docker token authentication) and access rules over a tree of published images,
 * one of them published protected. skopeo and podman log in, copy and pull; node:https checks every endpoint's
 * answer to every kind of denied client; the htpasswd file and the access rules change under a running server
 * (SIGHUP for the rules, in one process and in a cluster of two workers); an invalid configuration stops the
 * start and is refused by a reload. On a tree on each back end (BACKENDS: a directory, a bucket of the test S3
 * server): one PKI and one set of layouts, a tree per back end, the servers of each back end one after the other.
 *
 * The tree:                     the rules (first match wins):
 *   public/hello:1.0              public/**  → anonymous
 *   team/app:v1 (+ a referrer)    team/**    → group:dev = user:alice, cert:ci-robot
 *   ops/tool:v1                   ops/**     → user:bob
 *   secret/vault:v1 (protected)   secret/**  → anonymous (protected: any authenticated client, never anonymous)
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { BACKENDS, type BackendName } from '../helpers/backends.ts';
import { digestOf, execute, runDerrickWithoutServing, tempDir, type RunResult } from '../helpers/cli.ts';
import { containersClientConfig, podmanStateArgs } from '../helpers/containers.ts';
import { startDerrickServer, type DerrickServer } from '../helpers/derrick-server.ts';
import { imageWithReferrerLayout, singleImageLayout, type Descriptor } from '../helpers/images.ts';
import {
  htpasswdLine,
  makePki,
  tokenKey,
  unsupportedTokenKey,
  type KeyPair,
  type Pki,
} from '../helpers/pki.ts';
import {
  assertOciError,
  header,
  publishInto,
  readAnswer,
  suiteTree,
  type Answered,
  type Where,
} from '../helpers/server.ts';

const temp = tempDir('derrick-e2e-auth-');
/** The trees' removals (a bucket deleted, a directory removed), for the end of the file. */
const removals: (() => Promise<void>)[] = [];
after(async () => {
  for (const remove of removals) await remove();
  temp.cleanup();
});
let counter = 0;
const fresh = (label: string): string => path.join(temp.dir, `${label}-${++counter}`);

// The clients' configuration, independent of the host's: no search registries, no credentials, any image.
const { policy: POLICY, env: CLIENT_ENV } = containersClientConfig(path.join(temp.dir, 'client-config'));

/** Runs a command to completion, whatever its exit code. */
const exec = (command: string, args: string[]): Promise<RunResult> =>
  execute(command, args, { env: CLIENT_ENV });

const skopeo = (args: string[]): Promise<RunResult> => exec('skopeo', ['--policy', POLICY, ...args]);

async function skopeoOk(args: string[]): Promise<string> {
  const result = await skopeo(args);
  assert.equal(result.code, 0, `skopeo ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** skopeo fails, and says why on stderr in words matching `why`. */
async function skopeoFails(args: string[], why: RegExp): Promise<string> {
  const result = await skopeo(args);
  assert.notEqual(result.code, 0, `skopeo ${args.join(' ')} should have failed; it printed ${result.stdout}`);
  assert.match(result.stderr, why, `skopeo ${args.join(' ')}`);
  return result.stderr;
}

/** podman as root with vfs storage and all its state in `dir`. */
function podman(dir: string, args: string[]): Promise<RunResult> {
  return exec('podman', [...podmanStateArgs(dir), ...args]);
}

const SERVICE = 'derrick-e2e';
const PASSWORDS = { alice: 'alice-pw', bob: 'bob-pw' } as const;
const RULES = [
  { match: 'public/**', pull: ['anonymous'] },
  { match: 'team/**', pull: ['group:dev'] },
  { match: 'ops/**', pull: ['user:bob'] },
  { match: 'secret/**', pull: ['anonymous'] },
];
/** RULES with ops/** given to alice instead of bob. */
const SWAPPED_RULES = RULES.map((rule) =>
  rule.match === 'ops/**' ? { ...rule, pull: ['user:alice'] } : rule,
);

interface Repo {
  name: string;
  tag: string;
  /** The manifest digest derrick published under `tag`. */
  digest: string;
  /** Its one layer. */
  layer: string;
}

interface Fixture {
  pki: Pki;
  tokenKey: string;
  /** What `--data-dir` and `dataDir:` take: a directory, or s3://<bucket>/<prefix>. */
  dataDir: string;
  /** What a derrick child process needs to reach the tree. */
  env: NodeJS.ProcessEnv;
  /** A --cert-dir with the test CA only. */
  trust: string;
  /**
   * Client certificates, all with CN ci-robot: issued by the test CA, expired, issued by another CA, and issued by
   * the test CA then revoked (in `crl`, the test CA's CRL every server here is given as tls.clientCrl).
   */
  robot: KeyPair;
  expired: KeyPair;
  otherCa: KeyPair;
  revoked: KeyPair;
  crl: string;
  /** --cert-dirs with the test CA and one of those client certificates. */
  robotDir: string;
  expiredDir: string;
  otherCaDir: string;
  revokedDir: string;
  repos: { public: Repo; team: Repo & { artifact: string }; ops: Repo; secret: Repo };
}

function layerOf(layout: string, image: Descriptor): string {
  const manifest = JSON.parse(
    readFileSync(path.join(layout, 'blobs', ...image.digest.split(':')), 'utf8'),
  ) as { layers: { digest: string }[] };
  const layer = manifest.layers[0]?.digest;
  assert.ok(layer, `${image.digest} has no layer`);
  return layer;
}

async function publishRepo(
  where: Where,
  layout: string,
  image: Descriptor,
  reference: string,
  options: { protected?: boolean } = {},
): Promise<Repo> {
  const [name = '', tag = ''] = reference.split(':');
  const result = await publishInto(where, `oci:${layout}:${tag}`, [reference], options);
  assert.equal(result.repositories[0]?.tags[tag], image.digest, `${reference} was not published`);
  return { name, tag, digest: image.digest, layer: layerOf(layout, image) };
}

/** The PKI, the token key and the four layouts: made once, for the trees of every back end. */
async function buildSources() {
  const pki = makePki(path.join(temp.dir, 'pki'));
  const key = tokenKey(path.join(pki.dir, 'token.key'));
  const robot = pki.client('ci-robot');
  const expired = pki.client('ci-robot', { expired: true });
  const otherCa = pki.client('ci-robot', { otherCa: true });
  const revoked = pki.client('ci-robot');
  pki.revoke(revoked);
  const crl = pki.crl(path.join(pki.dir, 'crl.pem'));

  const layouts = {
    public: path.join(temp.dir, 'layout-public'),
    team: path.join(temp.dir, 'layout-team'),
    ops: path.join(temp.dir, 'layout-ops'),
    secret: path.join(temp.dir, 'layout-secret'),
  };
  const images = {
    public: await singleImageLayout(layouts.public, '1.0', 'public hello'),
    team: await imageWithReferrerLayout(layouts.team, 'v1'),
    ops: await singleImageLayout(layouts.ops, 'v1', 'ops tool'),
    secret: await singleImageLayout(layouts.secret, 'v1', 'secret vault'),
  };
  const keys = {
    pki,
    tokenKey: key,
    trust: pki.certDir(),
    robot,
    expired,
    otherCa,
    revoked,
    crl,
    robotDir: pki.certDir(robot),
    expiredDir: pki.certDir(expired),
    otherCaDir: pki.certDir(otherCa),
    revokedDir: pki.certDir(revoked),
  };
  return { keys, layouts, images };
}

let sources: ReturnType<typeof buildSources> | undefined;

async function buildFixture(backend: BackendName): Promise<Fixture> {
  sources ??= buildSources();
  const { keys, layouts, images } = await sources;
  const tree = await suiteTree(backend);
  removals.push(tree.remove);
  const { spot } = tree;
  // Published side by side into one tree, as concurrent publishers may.
  const [open, team, ops, secret] = await Promise.all([
    publishRepo(spot, layouts.public, images.public, 'public/hello:1.0'),
    publishRepo(spot, layouts.team, images.team.image, 'team/app:v1'),
    publishRepo(spot, layouts.ops, images.ops, 'ops/tool:v1'),
    publishRepo(spot, layouts.secret, images.secret, 'secret/vault:v1', { protected: true }),
  ]);
  const repos = { public: open, team: { ...team, artifact: images.team.artifact.digest }, ops, secret };
  return { ...keys, dataDir: spot.location, env: spot.env, repos };
}

const building = new Map<BackendName, Promise<Fixture>>();
/** The PKI and the published tree on `backend`, made once by whichever of its suites asks first. */
function fixture(backend: BackendName): Promise<Fixture> {
  const built = building.get(backend) ?? buildFixture(backend);
  building.set(backend, built);
  return built;
}

function writeHtpasswd(file: string, users: Record<string, string>): void {
  writeFileSync(
    file,
    Object.entries(users)
      .map(([user, password]) => `${htpasswdLine(user, password)}\n`)
      .join(''),
  );
}

interface ConfigOptions {
  htpasswd: string;
  access?: unknown[];
  workers?: number;
}

/** The serve configuration (as the YAML file holds it) over the fixture's tree. */
function configObject(f: Fixture, options: ConfigOptions): Record<string, unknown> {
  return {
    dataDir: f.dataDir,
    listen: '127.0.0.1:0',
    workers: options.workers ?? 1,
    logLevel: 'warn',
    tls: { cert: f.pki.server.cert, key: f.pki.server.key, clientCa: f.pki.ca, clientCrl: f.crl },
    auth: {
      htpasswd: options.htpasswd,
      groups: { dev: ['user:alice', 'cert:ci-robot'] },
      token: { service: SERVICE, key: f.tokenKey },
      // Many wrong passwords and refused certificates come from 127.0.0.1 here: no 429 in the way.
      failedLogins: { limit: 100000, windowSeconds: 60 },
    },
    access: options.access ?? RULES,
  };
}

function writeConfig(file: string, config: Record<string, unknown>): string {
  writeFileSync(file, stringify(config));
  return file;
}

/** A server's own htpasswd and YAML config file, in a fresh directory. */
function serverFiles(
  f: Fixture,
  label: string,
  options: Omit<ConfigOptions, 'htpasswd'> = {},
): { htpasswd: string; config: string } {
  const dir = fresh(label);
  mkdirSync(dir);
  const htpasswd = path.join(dir, 'htpasswd');
  writeHtpasswd(htpasswd, PASSWORDS);
  const config = writeConfig(path.join(dir, 'derrick.yaml'), configObject(f, { ...options, htpasswd }));
  return { htpasswd, config };
}

async function startServer(f: Fixture, config: string): Promise<DerrickServer> {
  const server = await startDerrickServer(f.dataDir, { args: ['--config', config], env: f.env });
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'the ready line names an https URL');
  return server;
}

/** Stops a server in an after hook: it must end cleanly and have logged no errors. */
async function stopServer(server: DerrickServer | undefined): Promise<void> {
  const ended = await server?.stop();
  if (!server || !ended) return;
  assert.deepEqual(ended, { code: 0, signal: null, killed: false }, 'derrick serve ends cleanly on SIGTERM');
  // pino's error (50) and fatal (60) levels: nothing a client did here is the operator's problem.
  assert.doesNotMatch(server.output(), /"level":[56]0/, 'derrick serve logged errors');
}

/** SIGHUP to the serving process (the cluster primary); resolves once `count` lines say how the reload went. */
async function hangUp(server: DerrickServer, count = 1): Promise<string[]> {
  const from = server.output().length;
  process.kill(server.pid, 'SIGHUP');
  const line = /^derrick: configuration (?:not )?reloaded.*$/gm;
  const output = await server.waitForOutput(line, { from, count });
  return output.slice(from).match(line) ?? [];
}

interface Who {
  basic?: readonly [string, string];
  bearer?: string;
  cert?: KeyPair;
}

/** One request over a fresh HTTPS connection to 127.0.0.1, trusting the test CA only. */
function request(
  f: Fixture,
  server: DerrickServer,
  urlPath: string,
  who: Who = {},
  method: 'GET' | 'HEAD' = 'GET',
): Promise<Answered> {
  const headers: Record<string, string> = {};
  if (who.basic) headers.authorization = `Basic ${Buffer.from(who.basic.join(':')).toString('base64')}`;
  if (who.bearer !== undefined) headers.authorization = `Bearer ${who.bearer}`;
  return new Promise((resolve, reject) => {
    const outgoing = https.request(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path: urlPath,
        headers,
        agent: false,
        ca: readFileSync(f.pki.ca),
        ...(who.cert ? { cert: readFileSync(who.cert.cert), key: readFileSync(who.cert.key) } : {}),
      },
      (response) =>
        void readAnswer(response).then(
          ({ statusCode, headers, body }) => resolve({ statusCode, headers, body }),
          reject,
        ),
    );
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** A token from derrick's GET /auth/token for `scopes`, with Basic credentials (or none). */
async function fetchToken(
  f: Fixture,
  server: DerrickServer,
  basic: readonly [string, string] | undefined,
  scopes: string[],
): Promise<string> {
  const query = [`service=${SERVICE}`, ...scopes.map((scope) => `scope=${encodeURIComponent(scope)}`)];
  const answer = await request(f, server, `/auth/token?${query.join('&')}`, basic ? { basic } : {});
  assert.equal(answer.statusCode, 200, `GET /auth/token: ${answer.body}`);
  assert.equal(header(answer, 'cache-control'), 'no-store');
  const body = JSON.parse(answer.body) as { token?: unknown; access_token?: unknown };
  assert.equal(typeof body.token, 'string');
  assert.equal(body.access_token, body.token);
  return body.token as string;
}

/** The repositories a token grants pull on (read from its payload, not verified: derrick does that). */
function granted(token: string): string[] {
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
    access?: { type: string; name: string; actions: string[] }[];
  };
  return (payload.access ?? [])
    .filter((access) => access.type === 'repository' && access.actions.includes('pull'))
    .map((access) => access.name);
}

interface Inspect {
  Name: string;
  Digest: string;
  RepoTags: string[];
}

const creds = (user: keyof typeof PASSWORDS): string => `${user}:${PASSWORDS[user]}`;
const BASIC = {
  alice: ['alice', PASSWORDS.alice],
  bob: ['bob', PASSWORDS.bob],
} as const;
/** What skopeo says when derrick refuses a client (401 or 403, from the registry or the token endpoint). */
const REFUSED = /unauthorized|denied|authentication required|insufficient_scope/i;

for (const backend of BACKENDS)
  describe(`${backend} tree: derrick serve over HTTPS with users, tokens, client certificates and access rules`, () => {
    let f!: Fixture;
    let server: DerrickServer | undefined;
    const host = (): string => {
      assert.ok(server, 'derrick serve did not start');
      return server.host;
    };
    const live = (): DerrickServer => {
      assert.ok(server, 'derrick serve did not start');
      return server;
    };
    const docker = (repo: Repo): string => `docker://${host()}/${repo.name}:${repo.tag}`;

    before(async () => {
      f = await fixture(backend);
      const { config } = serverFiles(f, 'main');
      server = await startServer(f, config);
    });
    after(() => stopServer(server));

    test('TLS is really verified: skopeo refuses derrick without the test CA, and trusts it with --cert-dir', async () => {
      const { public: open } = f.repos;
      await skopeoFails(['inspect', docker(open)], /certificate signed by unknown authority|x509/i);
      const inspected = JSON.parse(
        await skopeoOk(['inspect', '--cert-dir', f.trust, docker(open)]),
      ) as Inspect;
      assert.equal(inspected.Digest, open.digest);
    });

    test('1. skopeo --creds: an allowed user inspects and copies; a wrong password, a user not allowed and anonymous on the protected repository fail', async () => {
      const { team, secret, public: open } = f.repos;
      const inspected = JSON.parse(
        await skopeoOk(['inspect', '--creds', creds('alice'), '--cert-dir', f.trust, docker(team)]),
      ) as Inspect;
      assert.equal(inspected.Digest, team.digest);
      assert.equal(inspected.Name, `${host()}/${team.name}`);
      assert.deepEqual(inspected.RepoTags, [team.tag]);

      const destination = fresh('copy');
      await skopeoOk([
        'copy',
        '--quiet',
        '--src-creds',
        creds('alice'),
        '--src-cert-dir',
        f.trust,
        docker(team),
        `oci:${destination}:${team.tag}`,
      ]);
      const copied = await skopeoOk(['inspect', '--raw', `oci:${destination}:${team.tag}`]);
      assert.equal(digestOf(copied), team.digest, 'the copied manifest is not the published one');

      // Any authenticated user may pull the protected repository (its rule admits anonymous).
      const vault = JSON.parse(
        await skopeoOk(['inspect', '--creds', creds('bob'), '--cert-dir', f.trust, docker(secret)]),
      ) as Inspect;
      assert.equal(vault.Digest, secret.digest);

      await skopeoFails(
        ['inspect', '--creds', 'alice:not-her-password', '--cert-dir', f.trust, docker(team)],
        /incorrect username or password/,
      );
      await skopeoFails(
        ['inspect', '--creds', 'mallory:whatever', '--cert-dir', f.trust, docker(team)],
        /incorrect username or password/,
      );
      await skopeoFails(['inspect', '--creds', creds('bob'), '--cert-dir', f.trust, docker(team)], REFUSED);
      await skopeoFails(
        [
          'copy',
          '--quiet',
          '--src-creds',
          creds('bob'),
          '--src-cert-dir',
          f.trust,
          docker(team),
          `oci:${fresh('copy')}:x`,
        ],
        REFUSED,
      );
      await skopeoFails(['inspect', '--cert-dir', f.trust, docker(secret)], REFUSED);
      // …while anonymous pulls what anonymous may: the failures above are the rules, not the connection.
      const hello = JSON.parse(await skopeoOk(['inspect', '--cert-dir', f.trust, docker(open)])) as Inspect;
      assert.equal(hello.Digest, open.digest);
    });

    test('2. mutual TLS: a client certificate named in a cert: rule pulls without credentials; an expired or revoked one, or one from another CA, does not', async () => {
      const { team, ops, secret } = f.repos;
      const inspected = JSON.parse(
        await skopeoOk(['inspect', '--cert-dir', f.robotDir, docker(team)]),
      ) as Inspect;
      assert.equal(inspected.Digest, team.digest);
      const destination = fresh('copy-mtls');
      await skopeoOk([
        'copy',
        '--quiet',
        '--src-cert-dir',
        f.robotDir,
        docker(team),
        `oci:${destination}:v1`,
      ]);
      assert.equal(digestOf(await skopeoOk(['inspect', '--raw', `oci:${destination}:v1`])), team.digest);
      // A verified certificate is an authenticated client: the protected repository is open to it too.
      const vault = JSON.parse(
        await skopeoOk(['inspect', '--cert-dir', f.robotDir, docker(secret)]),
      ) as Inspect;
      assert.equal(vault.Digest, secret.digest);
      // ops/** is bob's alone.
      await skopeoFails(['inspect', '--cert-dir', f.robotDir, docker(ops)], REFUSED);

      for (const dir of [f.expiredDir, f.otherCaDir, f.revokedDir])
        await skopeoFails(['inspect', '--cert-dir', dir, docker(team)], REFUSED);

      // Why they fail, asked directly: derrick saw those certificates and refused them.
      for (const [cert, why] of [
        [f.expired, /expired/i],
        [f.otherCa, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/],
        [f.revoked, /revoked/i],
      ] as const) {
        const answer = await request(f, live(), `/v2/${team.name}/tags/list`, { cert });
        const error = assertOciError(answer, 401, 'UNAUTHORIZED');
        assert.match(error.message, /client certificate was not accepted/);
        assert.match(error.message, why);
        assert.match(header(answer, 'www-authenticate') ?? '', /^Bearer realm=/);
      }
      const accepted = await request(f, live(), `/v2/${team.name}/tags/list`, { cert: f.robot });
      assert.equal(accepted.statusCode, 200, accepted.body);
    });

    test('3. skopeo --registry-token with a token from GET /auth/token works for its repository only', async () => {
      const { team, secret, ops } = f.repos;
      const token = await fetchToken(f, live(), BASIC.alice, [`repository:${team.name}:pull`]);
      assert.deepEqual(granted(token), [team.name]);
      const inspected = JSON.parse(
        await skopeoOk(['inspect', '--registry-token', token, '--cert-dir', f.trust, docker(team)]),
      ) as Inspect;
      assert.equal(inspected.Digest, team.digest);
      const destination = fresh('copy-token');
      await skopeoOk([
        'copy',
        '--quiet',
        '--src-registry-token',
        token,
        '--src-cert-dir',
        f.trust,
        docker(team),
        `oci:${destination}:v1`,
      ]);
      assert.equal(digestOf(await skopeoOk(['inspect', '--raw', `oci:${destination}:v1`])), team.digest);

      // Alice may pull secret/vault, but not with a token for team/app.
      await skopeoFails(
        ['inspect', '--registry-token', token, '--cert-dir', f.trust, docker(secret)],
        REFUSED,
      );
      await skopeoFails(['inspect', '--registry-token', token, '--cert-dir', f.trust, docker(ops)], REFUSED);
      // Bob asks for team/app and is given a token without it.
      const bobs = await fetchToken(f, live(), BASIC.bob, [`repository:${team.name}:pull`]);
      assert.deepEqual(granted(bobs), []);
      await skopeoFails(['inspect', '--registry-token', bobs, '--cert-dir', f.trust, docker(team)], REFUSED);
      // A token for ops/tool works there and not on team/app.
      const opsToken = await fetchToken(f, live(), BASIC.bob, [`repository:${ops.name}:pull`]);
      assert.deepEqual(granted(opsToken), [ops.name]);
      await skopeoOk(['inspect', '--registry-token', opsToken, '--cert-dir', f.trust, docker(ops)]);
      await skopeoFails(
        ['inspect', '--registry-token', opsToken, '--cert-dir', f.trust, docker(team)],
        REFUSED,
      );
    });

    test('4. podman login, then podman pull: the image has the published digest; a wrong password does not log in', async () => {
      const { team } = f.repos;
      const state = fresh('podman');
      mkdirSync(state);
      const authfile = path.join(state, 'auth.json');
      writeFileSync(authfile, '{"auths":{}}\n'); // podman pull refuses an --authfile that does not exist
      const reference = `${host()}/${team.name}:${team.tag}`;
      const pull = () =>
        podman(state, [
          'pull',
          '--quiet',
          '--authfile',
          authfile,
          '--cert-dir',
          f.trust,
          '--signature-policy',
          POLICY,
          reference,
        ]);
      const login = (password: string) =>
        podman(state, [
          'login',
          '--authfile',
          authfile,
          '--cert-dir',
          f.trust,
          '-u',
          'alice',
          '-p',
          password,
          host(),
        ]);

      const wrong = await login('not-her-password');
      assert.notEqual(wrong.code, 0, `podman login with a wrong password succeeded: ${wrong.stdout}`);
      // podman words it its own way ("invalid username/password"), whatever derrick's message says.
      assert.match(wrong.stderr, /invalid username\/password|incorrect username or password|unauthorized/i);
      const afterWrong = JSON.parse(readFileSync(authfile, 'utf8')) as { auths: Record<string, unknown> };
      assert.equal(afterWrong.auths[host()], undefined, 'a failed login stored credentials');
      const anonymous = await pull();
      assert.notEqual(anonymous.code, 0, 'podman pull without logging in succeeded');
      assert.match(anonymous.stderr, REFUSED);

      const right = await login(PASSWORDS.alice);
      assert.equal(right.code, 0, `podman login: ${right.stderr}`);
      assert.match(right.stdout, /Login Succeeded/);
      const stored = JSON.parse(readFileSync(authfile, 'utf8')) as { auths: Record<string, unknown> };
      assert.ok(stored.auths[host()], `podman stored no credentials for ${host()}`);

      const pulled = await pull();
      assert.equal(pulled.code, 0, `podman pull: ${pulled.stderr}`);
      const inspected = await podman(state, ['image', 'inspect', reference]);
      assert.equal(inspected.code, 0, inspected.stderr);
      const [image] = JSON.parse(inspected.stdout) as { Digest: string; RepoDigests: string[] }[];
      assert.equal(image?.Digest, team.digest);
      assert.ok(
        image.RepoDigests.includes(`${host()}/${team.name}@${team.digest}`),
        image.RepoDigests.join(),
      );
    });

    test('5. every endpoint answers every denied client, over HTTPS: anonymous 401 + challenge, users and certificates 403, tokens 401 insufficient_scope, the same for a missing repository; _catalog names only what each may pull', async () => {
      const { public: open, team, ops, secret } = f.repos;
      const all = [open, team, ops, secret];
      const aliceTeamToken = await fetchToken(f, live(), BASIC.alice, [`repository:${team.name}:pull`]);
      const aliceCatalogToken = await fetchToken(f, live(), BASIC.alice, [
        `repository:${team.name}:pull`,
        'registry:catalog:*',
      ]);
      const bobTeamToken = await fetchToken(f, live(), BASIC.bob, [`repository:${team.name}:pull`]);
      type Kind = 'anonymous' | 'authenticated' | 'token';
      const clients: { label: string; who: Who; kind: Kind; may: Repo[]; catalog: string[] }[] = [
        { label: 'anonymous', who: {}, kind: 'anonymous', may: [open], catalog: [open.name] },
        {
          label: 'alice (Basic)',
          who: { basic: BASIC.alice },
          kind: 'authenticated',
          may: [open, team, secret],
          catalog: [open.name, secret.name, team.name],
        },
        {
          label: 'bob (Basic)',
          who: { basic: BASIC.bob },
          kind: 'authenticated',
          may: [open, ops, secret],
          catalog: [ops.name, open.name, secret.name],
        },
        {
          label: 'ci-robot (client certificate)',
          who: { cert: f.robot },
          kind: 'authenticated',
          may: [open, team, secret],
          catalog: [open.name, secret.name, team.name],
        },
        {
          label: "alice's token for team/app",
          who: { bearer: aliceTeamToken },
          kind: 'token',
          may: [open, team],
          catalog: [open.name, team.name],
        },
        {
          label: "alice's token for team/app and the catalog",
          who: { bearer: aliceCatalogToken },
          kind: 'token',
          may: [open, team],
          // The catalog scope lists what alice's identities may pull, beyond what the token grants.
          catalog: [open.name, secret.name, team.name],
        },
        {
          label: "bob's token (team/app asked for, nothing granted)",
          who: { bearer: bobTeamToken },
          kind: 'token',
          may: [open],
          catalog: [open.name],
        },
      ];
      const endpoints = (repo: Repo): [string, string][] => [
        ['manifest by tag', `/v2/${repo.name}/manifests/${repo.tag}`],
        ['manifest by digest', `/v2/${repo.name}/manifests/${repo.digest}`],
        ['blob', `/v2/${repo.name}/blobs/${repo.layer}`],
        ['tags/list', `/v2/${repo.name}/tags/list`],
        ['referrers', `/v2/${repo.name}/referrers/${repo.digest}`],
      ];
      const realm = `https://${host()}/auth/token`;
      let denials = 0;
      for (const client of clients) {
        for (const repo of all) {
          const allowed = client.may.includes(repo);
          for (const [what, url] of endpoints(repo))
            for (const method of ['GET', 'HEAD'] as const) {
              const context = `${client.label}: ${method} ${url} (${what})`;
              const answer = await request(f, live(), url, client.who, method);
              if (allowed) {
                assert.equal(answer.statusCode, 200, `${context}: ${answer.body}`);
                continue;
              }
              denials++;
              const challenge = header(answer, 'www-authenticate');
              if (client.kind === 'authenticated') {
                assert.equal(answer.statusCode, 403, context);
                if (method === 'GET') assertOciError(answer, 403, 'DENIED');
                continue;
              }
              assert.equal(answer.statusCode, 401, context);
              if (method === 'GET') assertOciError(answer, 401, 'UNAUTHORIZED');
              const scope = `,scope="repository:${repo.name}:pull"`;
              const error = client.kind === 'token' ? ',error="insufficient_scope"' : '';
              assert.equal(
                challenge,
                `Bearer realm="${realm}",service="${SERVICE}"${scope}${error}`,
                context,
              );
            }
        }
        const catalog = await request(f, live(), '/v2/_catalog', client.who);
        assert.equal(catalog.statusCode, 200, `${client.label}: _catalog: ${catalog.body}`);
        const listed = (JSON.parse(catalog.body) as { repositories: string[] }).repositories;
        assert.deepEqual(listed, client.catalog, `${client.label}: _catalog`);
        if (client.kind !== 'token' || client.who.bearer !== aliceCatalogToken)
          assert.deepEqual(
            listed,
            client.may.map((repo) => repo.name).sort(),
            `${client.label}: _catalog lists exactly what it may pull`,
          );
      }
      assert.equal(denials, 2 * 5 * (3 + 1 + 1 + 1 + 2 + 2 + 3), 'every denied combination was asked');

      // The referrers of team/app, to a client that may pull it, do name its artifact (the endpoint really answers).
      const referrers = await request(f, live(), `/v2/${team.name}/referrers/${team.digest}`, {
        basic: BASIC.alice,
      });
      const index = JSON.parse(referrers.body) as { manifests: { digest: string }[] };
      assert.deepEqual(
        index.manifests.map((manifest) => manifest.digest),
        [team.artifact],
      );

      // A denied client learns nothing from the tree: a missing repository under the same rule looks the same, on
      // every endpoint (status, challenge, body), referrers included.
      const missingName = 'team/not-published';
      const missingRepo: Repo = { ...team, name: missingName };
      const missingUrls = endpoints(missingRepo);
      for (const who of [{}, { basic: BASIC.bob }, { bearer: bobTeamToken }] as Who[])
        for (const [i, [what, url]] of endpoints(team).entries())
          for (const method of ['GET', 'HEAD'] as const) {
            const missingUrl = missingUrls[i]?.[1];
            assert.ok(missingUrl !== undefined);
            const existing = await request(f, live(), url, who, method);
            const missing = await request(f, live(), missingUrl, who, method);
            const context = `${JSON.stringify(Object.keys(who))}: ${method} ${what}`;
            assert.ok(existing.statusCode === 401 || existing.statusCode === 403, context);
            assert.equal(missing.statusCode, existing.statusCode, context);
            assert.equal(
              header(missing, 'www-authenticate')?.replaceAll(missingName, team.name),
              header(existing, 'www-authenticate'),
              context,
            );
            assert.equal(missing.body.replaceAll(missingName, team.name), existing.body, context);
          }
      // To a client that may pull there, a missing repository has no referrers: "the registry MUST NOT return a
      // `404 Not Found` to a referrers API requests".
      const none = await request(f, live(), `/v2/${missingName}/referrers/${team.digest}`, {
        basic: BASIC.alice,
      });
      assert.equal(none.statusCode, 200, none.body);
      assert.equal(header(none, 'content-type'), 'application/vnd.oci.image.index.v1+json');
      assert.deepEqual(JSON.parse(none.body), {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [],
      });
    });
  });

// On the file system only: a changed htpasswd file and a SIGHUP reload change who may pull, never how the tree is
// read (the reload leaves the tree as it is; the S3 suite above pulls every repository under these rules).
describe('a running derrick picks up a changed htpasswd file and, on SIGHUP, changed access rules', () => {
  let f!: Fixture;
  let server: DerrickServer | undefined;
  let files!: { htpasswd: string; config: string };
  const docker = (repo: Repo): string => {
    assert.ok(server, 'derrick serve did not start');
    return `docker://${server.host}/${repo.name}:${repo.tag}`;
  };
  const inspect = (user: string, password: string, repo: Repo) =>
    skopeoOk(['inspect', '--raw', '--creds', `${user}:${password}`, '--cert-dir', f.trust, docker(repo)]);
  const refused = (user: string, password: string, repo: Repo, why = REFUSED) =>
    skopeoFails(
      ['inspect', '--raw', '--creds', `${user}:${password}`, '--cert-dir', f.trust, docker(repo)],
      why,
    );
  const live = (): DerrickServer => {
    assert.ok(server, 'derrick serve did not start');
    return server;
  };

  before(async () => {
    f = await fixture('fs');
    files = serverFiles(f, 'live');
    server = await startServer(f, files.config);
  });
  after(() => stopServer(server));

  test('6. a user added to the htpasswd file, and a changed password, count at once, without a restart', async () => {
    const { secret } = f.repos;
    const pid = live().pid;
    await refused('carol', 'carol-pw', secret, /incorrect username or password/);
    // Written in place, as an editor would.
    appendFileSync(files.htpasswd, `${htpasswdLine('carol', 'carol-pw')}\n`);
    assert.equal(digestOf(await inspect('carol', 'carol-pw', secret)), secret.digest);

    assert.equal(digestOf(await inspect('bob', PASSWORDS.bob, secret)), secret.digest);
    // Replaced whole (written aside, renamed over), as htpasswd(1) does.
    const next = `${files.htpasswd}.new`;
    writeHtpasswd(next, { alice: PASSWORDS.alice, bob: 'bob-new-pw', carol: 'carol-pw' });
    renameSync(next, files.htpasswd);
    assert.equal(digestOf(await inspect('bob', 'bob-new-pw', secret)), secret.digest);
    await refused('bob', PASSWORDS.bob, secret, /incorrect username or password/);
    assert.equal(live().pid, pid);
    assert.doesNotMatch(live().output(), /derrick: configuration reloaded/, 'no SIGHUP was needed');

    // Back as the other tests expect it.
    writeHtpasswd(next, PASSWORDS);
    renameSync(next, files.htpasswd);
    await inspect('bob', PASSWORDS.bob, f.repos.ops);
    await refused('carol', 'carol-pw', secret, /incorrect username or password/);
  });

  test('7. changed access rules + SIGHUP: applied at once; a configuration made invalid is refused and the rules in force stay', async () => {
    const { ops, team } = f.repos;
    await inspect('bob', PASSWORDS.bob, ops);
    await refused('alice', PASSWORDS.alice, ops);
    const bobsToken = await fetchToken(f, live(), BASIC.bob, [`repository:${ops.name}:pull`]);
    assert.deepEqual(granted(bobsToken), [ops.name]);
    const withToken = ['inspect', '--raw', '--registry-token', bobsToken, '--cert-dir', f.trust, docker(ops)];
    await skopeoOk(withToken);

    writeConfig(files.config, configObject(f, { htpasswd: files.htpasswd, access: SWAPPED_RULES }));
    assert.deepEqual(await hangUp(live()), ['derrick: configuration reloaded']);
    assert.equal(digestOf(await inspect('alice', PASSWORDS.alice, ops)), ops.digest);
    await refused('bob', PASSWORDS.bob, ops);
    // A token issued before the change grants no more than the rules now allow its holder.
    await skopeoFails(withToken, REFUSED);

    // A rule naming an undefined group: refused whole, so its other change (ops/** back to bob) does not apply.
    const undefinedGroup = RULES.map((rule) =>
      rule.match === 'team/**' ? { ...rule, pull: ['group:nobody'] } : rule,
    );
    writeConfig(files.config, configObject(f, { htpasswd: files.htpasswd, access: undefinedGroup }));
    const [refusal] = await hangUp(live());
    assert.match(
      refusal ?? '',
      /^derrick: configuration not reloaded, the previous one stays in force: access\.1\.pull: group:nobody is not defined/,
    );
    await inspect('alice', PASSWORDS.alice, ops);
    await refused('bob', PASSWORDS.bob, ops);
    await inspect('alice', PASSWORDS.alice, team);

    // An htpasswd path that does not exist: refused, and the users in force still log in.
    writeConfig(
      files.config,
      configObject(f, { htpasswd: path.join(path.dirname(files.htpasswd), 'missing'), access: RULES }),
    );
    const [missing] = await hangUp(live());
    assert.match(
      missing ?? '',
      /^derrick: configuration not reloaded, the previous one stays in force: auth\.htpasswd: .*missing/,
    );
    await inspect('alice', PASSWORDS.alice, ops);
    await refused('bob', PASSWORDS.bob, ops);

    // Valid again: the original rules come back.
    writeConfig(files.config, configObject(f, { htpasswd: files.htpasswd, access: RULES }));
    assert.deepEqual(await hangUp(live()), ['derrick: configuration reloaded']);
    await inspect('bob', PASSWORDS.bob, ops);
    await refused('alice', PASSWORDS.alice, ops);
  });
});

/** `derrick serve --config <file>` that should not start: its exit and output (SIGTERM if it serves after all). */
function serveInvalid(config: string): Promise<RunResult & { served: boolean }> {
  return runDerrickWithoutServing(['serve', '--config', config, '--no-access-log']);
}

// On the file system only: each case is refused before any tree is read (the start stops at the configuration).
describe('an invalid configuration at start', () => {
  let f!: Fixture;
  let dir = '';
  let htpasswd = '';
  before(async () => {
    f = await fixture('fs');
    dir = fresh('invalid');
    mkdirSync(dir);
    htpasswd = path.join(dir, 'htpasswd');
    writeHtpasswd(htpasswd, PASSWORDS);
  });

  /** A config file: the valid one, changed by `change`. */
  const configWith = (label: string, change: (config: Record<string, unknown>) => void): string => {
    const config = configObject(f, { htpasswd });
    change(config);
    return writeConfig(path.join(dir, `${label}.yaml`), config);
  };
  const garbage = (name: string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, 'this is not PEM\n');
    return file;
  };
  const authOf = (config: Record<string, unknown>) => config.auth as Record<string, unknown>;
  const tokenOf = (config: Record<string, unknown>) => authOf(config).token as Record<string, unknown>;

  async function assertRefused(config: string, key: string, why: RegExp): Promise<void> {
    const result = await serveInvalid(config);
    assert.equal(result.served, false, `derrick served with ${key} invalid:\n${result.stderr}`);
    assert.equal(result.code, 1, `${key}: exit ${result.code}:\n${result.stderr}`);
    const line = new RegExp(`^derrick: invalid configuration: ${key.replaceAll('.', '\\.')}: [^\\n]+\\n$`);
    assert.match(result.stderr, line, key);
    assert.match(result.stderr, why, key);
    assert.doesNotMatch(result.stderr, /^\s+at /m, `${key}: a stack trace`);
  }

  test('7. exit 1 with "derrick: invalid configuration: <key>: …", no stack trace: bad token key file, missing htpasswd, wrong token key types, weak hashes, undefined group', async () => {
    const rsa1024 = unsupportedTokenKey(path.join(dir, 'rsa1024.key'), 'rsa-1024');
    const ed25519 = unsupportedTokenKey(path.join(dir, 'ed25519.key'), 'ed25519');
    const p384 = unsupportedTokenKey(path.join(dir, 'p384.key'), 'ec-p384');
    const weak = path.join(dir, 'weak-htpasswd');
    writeFileSync(weak, 'alice:$apr1$abcdefgh$0123456789abcdefghijkl\n');
    const cases: [string, string, RegExp][] = [
      [
        configWith('token-key-garbage', (c) => (tokenOf(c).key = garbage('token-garbage.key'))),
        'auth.token.key',
        /is not a PEM private key/,
      ],
      [
        configWith('token-key-missing', (c) => (tokenOf(c).key = path.join(dir, 'no-such.key'))),
        'auth.token.key',
        /cannot read/,
      ],
      [
        configWith('htpasswd-missing', (c) => (authOf(c).htpasswd = path.join(dir, 'no-such-htpasswd'))),
        'auth.htpasswd',
        /no-such-htpasswd/,
      ],
      [configWith('htpasswd-weak', (c) => (authOf(c).htpasswd = weak)), 'auth.htpasswd', /\$apr1\$.*refuses/],
      [
        configWith('token-key-rsa1024', (c) => (tokenOf(c).key = rsa1024)),
        'auth.token.key',
        /rsa key; expected/,
      ],
      [
        configWith('token-key-ed25519', (c) => (tokenOf(c).key = ed25519)),
        'auth.token.key',
        /ed25519 key; expected/,
      ],
      [configWith('token-key-p384', (c) => (tokenOf(c).key = p384)), 'auth.token.key', /ec key; expected/],
      [
        configWith('undefined-group', (c) => (c.access = [{ match: '**', pull: ['group:nobody'] }])),
        'access.0.pull',
        /group:nobody is not defined/,
      ],
      [
        configWith(
          'tls-cert-garbage',
          (c) => ((c.tls as Record<string, unknown>).cert = garbage('cert.pem')),
        ),
        'tls.cert',
        /holds no PEM certificate/,
      ],
      [
        configWith('tls-key-of-another-cert', (c) => ((c.tls as Record<string, unknown>).key = f.robot.key)),
        'tls.key',
        /cannot be used/,
      ],
    ];
    // Two at a time: each is a tsx start-up.
    for (let i = 0; i < cases.length; i += 2)
      await Promise.all(cases.slice(i, i + 2).map(([config, key, why]) => assertRefused(config, key, why)));
  });

  test('7. a tls.key file that is not a key is reported as tls.key', async () => {
    const config = configWith(
      'tls-key-garbage',
      (c) => ((c.tls as Record<string, unknown>).key = garbage('tls.key')),
    );
    await assertRefused(config, 'tls.key', /not a PEM private key/);
  });

  test('7. a tls.clientCa file that holds no certificate stops the start', async () => {
    const config = configWith(
      'client-ca-garbage',
      (c) => ((c.tls as Record<string, unknown>).clientCa = garbage('client-ca.pem')),
    );
    await assertRefused(config, 'tls.clientCa', /holds no PEM certificate/);
  });
});

// On the file system only: what is tested is the reload reaching both workers; two workers serving an S3 tree
// are test/e2e/proxy.test.ts's (its pulls are spread over both).
describe('workers: 2, SIGHUP to the primary', () => {
  let f!: Fixture;
  let server: DerrickServer | undefined;
  let files!: { htpasswd: string; config: string };
  const live = (): DerrickServer => {
    assert.ok(server, 'derrick serve did not start');
    return server;
  };

  before(async () => {
    f = await fixture('fs');
    files = serverFiles(f, 'workers', { workers: 2 });
    server = await startServer(f, files.config);
  });
  after(() => stopServer(server));

  test('8. reloads both workers (two "configuration reloaded" lines), and every request then sees the new rules', async () => {
    const { ops } = f.repos;
    assert.match(live().output(), /^derrick: 2 workers$/m);
    const url = `/v2/${ops.name}/manifests/${ops.tag}`;
    // Fresh connections, spread over both workers by the cluster's round-robin.
    const statuses = async (basic: readonly [string, string]): Promise<number[]> => {
      const answers = [];
      for (let i = 0; i < 8; i++) answers.push((await request(f, live(), url, { basic })).statusCode);
      return answers;
    };
    assert.deepEqual(await statuses(BASIC.bob), Array(8).fill(200));
    assert.deepEqual(await statuses(BASIC.alice), Array(8).fill(403));

    writeConfig(
      files.config,
      configObject(f, { htpasswd: files.htpasswd, access: SWAPPED_RULES, workers: 2 }),
    );
    assert.deepEqual(await hangUp(live(), 2), [
      'derrick: configuration reloaded',
      'derrick: configuration reloaded',
    ]);

    assert.deepEqual(await statuses(BASIC.alice), Array(8).fill(200));
    assert.deepEqual(await statuses(BASIC.bob), Array(8).fill(403));
    const docker = `docker://${live().host}/${ops.name}:${ops.tag}`;
    for (let i = 0; i < 2; i++) {
      const raw = await skopeoOk([
        'inspect',
        '--raw',
        '--creds',
        creds('alice'),
        '--cert-dir',
        f.trust,
        docker,
      ]);
      assert.equal(digestOf(raw), ops.digest);
      await skopeoFails(
        ['inspect', '--raw', '--creds', creds('bob'), '--cert-dir', f.trust, docker],
        REFUSED,
      );
    }
  });
});

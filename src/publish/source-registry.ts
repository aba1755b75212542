/**
 * `docker://[host[:port]/]name[:tag|@digest]` — an image in a registry, read over the distribution API
 * (registry/client.ts: auth, retries, redirects, TLS). The manifest the reference names is the root; an index's
 * children and the blobs are fetched as the publisher asks for them, each verified against its digest there (and
 * manifests here, as they arrive). Referrers come from the referrers API (`GET /v2/<name>/referrers/<digest>`,
 * distribution-spec 1.1) for every manifest published, to a fixed point.
 *
 * A registry without that API (404, 405 or 400, as distribution 2.8 answers) is read the two ways clients store
 * referrers there instead:
 * - the distribution spec's referrers tag schema: the tag `<alg>-<hex>` holds an index of the referrers of that
 *   digest, whose manifests are candidates like the API's answer (the index itself is not published: derrick
 *   answers the referrers API);
 * - cosign's tag scheme: the signature, attestations and SBOM of a digest are tagged `sha256-<hex>.sig`, `.att`
 *   and `.sbom`, and have no `subject`. Those of the root are extra roots, published under that same tag
 *   (SourceManifest.tag), which is how cosign finds them in the mirror. Only the root's: cosign signs the digest
 *   it was given, which is the index of a multi-platform image, not its children.
 */
import { Readable } from 'node:stream';
import { digestLike, sha256Digest } from '../oci/digest.ts';
import { MANIFEST_MEDIA_TYPES, OCI_INDEX, parseManifest } from '../oci/media-types.ts';
import { validateTag } from '../oci/names.ts';
import {
  RegistryClient,
  RETRIES,
  readBytes,
  readText,
  type Answer,
  type ClientOptions,
} from './registry/client.ts';
import { formatReference, type RegistryReference } from './registry/reference.ts';
import { SourceError, type BlobBytes, type ImageSource, type SourceManifest } from './source.ts';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** A manifest larger than this is refused (distribution's own limit is 4 MiB). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** cosign's tag suffixes: a signature, attestations, an SBOM. */
const COSIGN_SUFFIXES = ['sig', 'att', 'sbom'] as const;

export function openRegistrySource(reference: RegistryReference, options: ClientOptions): ImageSource {
  const client = new RegistryClient(reference.endpoint, options);
  const scope = `repository:${reference.name}:pull`;
  const base = `/v2/${reference.name}`;
  const description = `docker://${formatReference(reference)}`;
  const manifests = new Map<string, { bytes: Buffer; mediaType: string | undefined }>();
  /** Whether the registry answers the referrers API; undefined until it was asked. */
  let referrersApi: boolean | undefined;
  const listed = new Map<string, SourceManifest[]>();

  /** GET a manifest by tag or digest: its bytes and digest, checked against a digest reference. */
  const fetchManifest = async (
    ref: string,
  ): Promise<{ bytes: Buffer; digest: string; mediaType: string | undefined } | undefined> => {
    const answer = await client.request('GET', `${base}/manifests/${ref}`, scope, { accept: ACCEPT });
    if (answer.status === 404) {
      answer.body.resume();
      return undefined;
    }
    const bytes = await readBytes(answer, MAX_MANIFEST_BYTES);
    if (answer.status !== 200)
      throw new SourceError(
        `${description}: GET manifests/${ref} answered ${answer.status}: ${errorText(bytes.toString('utf8'))}`,
      );
    // A digest reference is checked with its own algorithm; a tag's manifest is known by its sha256.
    const digest = ref.includes(':') ? digestLike(ref, bytes) : sha256Digest(bytes);
    if (ref.includes(':') && ref !== digest)
      throw new SourceError(
        `${description}: the registry answered manifest ${ref} with bytes whose digest is ${digest}`,
      );
    const type = answer.headers['content-type']?.split(';')[0]?.trim();
    return { bytes, digest, mediaType: type };
  };

  return {
    description,
    remote: true,
    async roots() {
      const ref = reference.digest ?? reference.tag ?? 'latest';
      const found = await fetchManifest(ref);
      if (!found)
        throw new SourceError(`${description}: the registry has no manifest ${ref} in ${reference.name}`);
      manifests.set(found.digest, found);
      const roots: SourceManifest[] = [
        {
          digest: found.digest,
          mediaType: found.mediaType,
          size: found.bytes.length,
          refName: reference.tag,
        },
      ];
      // The probe: the root's referrers, which candidateReferrers asks for anyway (kept).
      await referrersOf(found.digest);
      if (referrersApi) return roots;
      for (const suffix of COSIGN_SUFFIXES) {
        const tag = `${found.digest.replace(':', '-')}.${suffix}`;
        if (!validateTag(tag).ok) continue; // a sha512 digest makes a tag over 128 characters: cosign has none
        const tagged = await fetchManifest(tag);
        if (!tagged) continue;
        manifests.set(tagged.digest, tagged);
        roots.push({
          digest: tagged.digest,
          mediaType: tagged.mediaType,
          size: tagged.bytes.length,
          refName: tag,
          tag,
        });
      }
      return roots;
    },
    async candidateReferrers() {
      const found: SourceManifest[] = [];
      const asked = new Set<string>();
      for (let pending = [...manifests.keys()]; pending.length > 0;) {
        const next: string[] = [];
        for (const subject of pending) {
          if (asked.has(subject)) continue;
          asked.add(subject);
          for (const entry of await referrersOf(subject)) {
            if (manifests.has(entry.digest) || found.some((known) => known.digest === entry.digest)) continue;
            found.push(entry);
            next.push(entry.digest);
          }
        }
        pending = next;
      }
      return found;
    },
    async readManifest(digest) {
      let held = manifests.get(digest);
      if (!held) {
        const fetched = await fetchManifest(digest);
        if (!fetched) return undefined;
        held = fetched;
        manifests.set(digest, held);
      }
      return { bytes: held.bytes, where: `${description} manifest ${digest}` };
    },
    blob(digest): Promise<BlobBytes> {
      const where = `${description} blob ${digest}`;
      return Promise.resolve({
        kind: 'stream',
        where,
        open: async () => {
          // The first answer before the stream: a refusal is an error here, not in the middle of staging.
          const first = await client.request('GET', `${base}/blobs/${digest}`, scope);
          if (first.status !== 200) {
            const text = await readText(first).catch(() => '');
            throw new SourceError(`${where}: GET answered ${first.status}: ${errorText(text)}`);
          }
          return Readable.from(resumed(first, where, digest), { objectMode: false });
        },
      });
    },
    close() {
      client.close();
      return Promise.resolve();
    },
  };

  /**
   * A blob's bytes, the transfer resumed where it broke (`Range: bytes=<received>-`; a registry that answers 200
   * to it instead of 206 sends it all again, and what was already received is skipped), up to RETRIES times.
   */
  async function* resumed(first: Answer, where: string, digest: string): AsyncGenerator<Buffer> {
    let received = 0;
    let answer = first;
    for (let failures = 0; ;) {
      let skip = answer.status === 206 ? 0 : received;
      try {
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
          if (skip >= chunk.length) {
            skip -= chunk.length;
            continue;
          }
          const fresh = skip > 0 ? chunk.subarray(skip) : chunk;
          skip = 0;
          received += fresh.length;
          yield fresh;
        }
        return;
      } catch (error) {
        if (++failures > RETRIES)
          throw new SourceError(
            `${where}: the transfer broke ${failures} times; last: ${(error as Error).message}`,
          );
      }
      answer = await client.request('GET', `${base}/blobs/${digest}`, scope, { range: `bytes=${received}-` });
      if (answer.status !== 200 && answer.status !== 206) {
        const text = await readText(answer).catch(() => '');
        throw new SourceError(
          `${where}: GET (resuming at byte ${received}) answered ${answer.status}: ${errorText(text)}`,
        );
      }
    }
  }

  /**
   * The referrers of `subject`: the referrers API's answer, or without the API the index the referrers tag schema
   * keeps under `<alg>-<hex>` ([] when there is none, or it is not an index). Asked once per subject.
   */
  async function referrersOf(subject: string): Promise<SourceManifest[]> {
    const known = listed.get(subject);
    if (known) return known;
    let found: SourceManifest[] | undefined;
    if (referrersApi !== false) {
      const answer = await client.request('GET', `${base}/referrers/${subject}`, scope, {
        accept: OCI_INDEX,
      });
      if (answer.status === 404 || answer.status === 405 || answer.status === 400) {
        answer.body.resume();
        referrersApi = false;
      } else {
        const text = await readText(answer, MAX_MANIFEST_BYTES);
        if (answer.status !== 200)
          throw new SourceError(
            `${description}: GET referrers/${subject} answered ${answer.status}: ${errorText(text)}`,
          );
        referrersApi = true;
        let index: unknown;
        try {
          index = JSON.parse(text);
        } catch {
          throw new SourceError(`${description}: the referrers of ${subject} are not JSON`);
        }
        found = descriptorsOf(index);
      }
    }
    found ??= await tagSchemaReferrers(subject);
    listed.set(subject, found);
    return found;
  }

  /**
   * The referrers tag schema: "`<alg>-<ref>` … `<ref>`: the digest from the subject field (limit of 64
   * characters)". Its index is read as a list, not verified against a digest: each manifest it names is, as
   * collect reads it.
   */
  async function tagSchemaReferrers(subject: string): Promise<SourceManifest[]> {
    const [algorithm = '', hex = ''] = subject.split(':');
    const tagged = await fetchManifest(`${algorithm}-${hex.slice(0, 64)}`);
    if (!tagged) return [];
    const parsed = parseManifest(tagged.bytes, tagged.mediaType);
    if ('error' in parsed || parsed.mediaType !== OCI_INDEX) return []; // "not a valid image index": none
    return descriptorsOf(JSON.parse(tagged.bytes.toString('utf8')));
  }
}

/** The manifests an index (a referrers list) names, as candidates. */
function descriptorsOf(index: unknown): SourceManifest[] {
  const manifests = (index as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(manifests)) return [];
  return manifests.flatMap((entry: { digest?: unknown; mediaType?: unknown; size?: unknown }) =>
    typeof entry.digest === 'string'
      ? [
          {
            digest: entry.digest,
            mediaType: typeof entry.mediaType === 'string' ? entry.mediaType : undefined,
            size: typeof entry.size === 'number' ? entry.size : undefined,
            refName: undefined,
          },
        ]
      : [],
  );
}

/** A registry's error body in one line: its first OCI error's code and message when it has them. */
function errorText(text: string): string {
  try {
    const body = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    const first = body.errors?.[0];
    if (first) return `${first.code ?? ''} ${first.message ?? ''}`.trim();
  } catch {
    // not JSON
  }
  return text.replace(/\s+/g, ' ').slice(0, 200) || '(no body)';
}

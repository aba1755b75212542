/**
 * `--platform os/arch[/variant][,...]`: which children of an index a publish keeps. A mirror of a multi-platform
 * image rarely needs every platform (an amd64 fleet has no use for s390x layers), and the bytes saved are most
 * of the image.
 *
 * Matching follows containerd's `platforms.Normalize`: architecture aliases are folded (`x86_64` → `amd64`,
 * `aarch64` → `arm64`, `armhf` → `arm/v7`), arm64's `v8` is arm64 with no variant, and arm with no variant is
 * `v7`. Then a child matches a wanted platform when os and architecture are equal and, if the wanted platform
 * names a variant, the variants are equal: `linux/arm64` keeps `linux/arm64/v8`, `linux/arm` keeps v6 and v7.
 * Children that are not images — no platform, or an attestation (`vnd.docker.reference.type`, as buildx writes
 * them) — are dropped whenever a filter is given.
 *
 * An index whose children are all kept is published as it is, under its own digest. Otherwise the published index
 * is a new document: the upstream's JSON with `manifests` filtered and every other field as it was, written as
 * `JSON.stringify` of the parsed document (no whitespace, keys in the upstream's order), so its sha256 digest
 * depends only on the upstream's bytes and the filter — `derrick sync` recomputes it to see that nothing changed.
 */
import { sha256Digest } from '../oci/digest.ts';

/** One platform `--platform` names; `variant` undefined: any variant. */
export interface PlatformSpec {
  os: string;
  architecture: string;
  variant: string | undefined;
}

/** A child of the index, as `filterIndex` reports it. */
export interface IndexChild {
  digest: string;
  /** `os/arch[/variant]`, or undefined for a child with no platform. */
  platform: string | undefined;
}

export type Filtered =
  | {
      /** The index to publish: the upstream's own bytes when every child is kept. */
      bytes: Buffer;
      /** sha256 of `bytes`. */
      digest: string;
      changed: boolean;
      kept: IndexChild[];
      dropped: IndexChild[];
    }
  | { error: string };

const COMPONENT = /^[a-z0-9][a-z0-9._-]*$/;
const FORM = 'write os/arch[/variant], comma-separated, e.g. linux/amd64,linux/arm64/v8';

/** Reads `--platform` values: `linux/amd64`, `linux/arm64/v8,linux/amd64`; lower-cased, duplicates kept. */
export function parsePlatforms(text: string): PlatformSpec[] | { error: string } {
  const specs: PlatformSpec[] = [];
  for (const item of text.split(',')) {
    const parts = item.trim().toLowerCase().split('/');
    const [os, architecture, variant] = parts;
    if (parts.length < 2 || parts.length > 3 || !parts.every((part) => COMPONENT.test(part)))
      return { error: `--platform "${item.trim()}" is not a platform; ${FORM}` };
    specs.push({ os: os ?? '', architecture: architecture ?? '', variant });
  }
  return specs;
}

/** `os/arch[/variant]`, as a person writes it. */
export function formatPlatform(platform: { os: string; architecture: string; variant?: string | undefined }) {
  return [platform.os, platform.architecture, platform.variant].filter((part) => part).join('/');
}

/** containerd's Normalize, for the parts derrick compares. */
function normalize(os: string, architecture: string, variant: string): PlatformSpec {
  const lower = os.toLowerCase();
  const osName = lower === 'macos' ? 'darwin' : lower;
  let arch = architecture.toLowerCase();
  let v = variant.toLowerCase();
  if (arch === 'i386') arch = '386';
  else if (arch === 'x86_64' || arch === 'x86-64' || arch === 'amd64') {
    arch = 'amd64';
    if (v === 'v1') v = '';
  } else if (arch === 'aarch64' || arch === 'arm64') {
    arch = 'arm64';
    if (v === '8' || v === 'v8' || v === 'v8.0') v = '';
    else if (v === '9' || v === '9.0' || v === 'v9.0') v = 'v9';
  } else if (arch === 'armhf') [arch, v] = ['arm', 'v7'];
  else if (arch === 'armel') [arch, v] = ['arm', 'v6'];
  else if (arch === 'arm') {
    if (v === '') v = 'v7';
    else if (/^[5-8]$/.test(v)) v = `v${v}`;
  }
  return { os: osName, architecture: arch, variant: v };
}

/** Whether a child's platform is one of `wanted` (see the rule above). */
export function platformMatches(
  child: { os: string; architecture: string; variant?: string | undefined },
  wanted: readonly PlatformSpec[],
): boolean {
  const have = normalize(child.os, child.architecture, child.variant ?? '');
  return wanted.some((spec) => {
    const want = normalize(spec.os, spec.architecture, spec.variant ?? '');
    if (have.os !== want.os || have.architecture !== want.architecture) return false;
    return spec.variant === undefined || have.variant === want.variant;
  });
}

interface ChildDescriptor {
  digest?: unknown;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
  annotations?: Record<string, unknown>;
}

function describeChild(child: ChildDescriptor): IndexChild {
  const platform = child.platform;
  const text =
    platform && typeof platform.os === 'string' && typeof platform.architecture === 'string'
      ? formatPlatform({
          os: platform.os,
          architecture: platform.architecture,
          variant: typeof platform.variant === 'string' ? platform.variant : undefined,
        })
      : undefined;
  return { digest: typeof child.digest === 'string' ? child.digest : '', platform: text };
}

/** Whether a child is an image for `wanted` (not an attestation, not platform-less, and matching). */
function keeps(child: ChildDescriptor, wanted: readonly PlatformSpec[]): boolean {
  if (child.annotations && 'vnd.docker.reference.type' in child.annotations) return false;
  const platform = child.platform;
  if (!platform || typeof platform.os !== 'string' || typeof platform.architecture !== 'string') return false;
  const variant = typeof platform.variant === 'string' ? platform.variant : undefined;
  return platformMatches({ os: platform.os, architecture: platform.architecture, variant }, wanted);
}

/**
 * The index to publish for `wanted`: `bytes` as they are when every child is kept, else the filtered document.
 * An error (one line) when the bytes are no index or no child is kept; it names the platforms the index has.
 */
export function filterIndex(bytes: Buffer, wanted: readonly PlatformSpec[]): Filtered {
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { error: 'the index is not JSON' };
  }
  const index = document as { manifests?: unknown };
  if (typeof document !== 'object' || document === null || !Array.isArray(index.manifests))
    return { error: 'not an index (no manifests list)' };
  const children = index.manifests as ChildDescriptor[];
  const kept = children.filter((child) => keeps(child, wanted));
  if (kept.length === 0) {
    const has = [...new Set(children.map((child) => describeChild(child).platform ?? 'no platform'))];
    return {
      error: `--platform ${wanted.map(formatPlatform).join(',')} matches no image in the index; it has ${has.join(', ') || 'no children'}`,
    };
  }
  const dropped = children.filter((child) => !kept.includes(child)).map(describeChild);
  if (dropped.length === 0)
    return { bytes, digest: sha256Digest(bytes), changed: false, kept: kept.map(describeChild), dropped };
  const filtered = Buffer.from(JSON.stringify({ ...index, manifests: kept }), 'utf8');
  return {
    bytes: filtered,
    digest: sha256Digest(filtered),
    changed: true,
    kept: kept.map(describeChild),
    dropped,
  };
}

/**
 * Shared shapes of the benchmark harness (`npm run bench [-- --quick]`): what the fixtures are, and what every
 * measure reports. The harness prints rows as a table and writes them to bench/out/ as JSON and Markdown.
 */

/** tiny: seconds, for the test suite (it must not rot); quick: < 3 min; full: < 20 min. */
export type BenchSize = 'tiny' | 'quick' | 'full';

/** How long and how hard each measure runs, for a size (bench/run.ts's PLANS, `--rounds`/`--seconds` applied). */
export interface Plan {
  /** HTTP rounds, and seconds per run. */
  rounds: number;
  seconds: number;
  /** Connections for small answers, and for 1 MiB blobs (fewer, longer requests). */
  connections: number;
  blobConnections: number;
  /** Sequential curl downloads of the 1 GiB blob per server and round (full size only). */
  downloads: number;
  tree: { rounds: number; publishes: number; bytes: number };
}

/** One published image the HTTP measures ask for. */
export interface BenchImage {
  name: string;
  tag: string;
  /** Digest of the manifest the tag names (an image manifest, not an index). */
  digest: string;
  mediaType: string;
}

export interface BenchBlob {
  name: string;
  digest: string;
  size: number;
}

export interface Fixtures {
  /** Work directory everything lives in (removed at the end). */
  workDir: string;
  /** The main tree, built with the real `derrick publish`: small images, a multi-platform index, blobs. */
  dataDir: string;
  /** A single-platform image (and the same image loaded into docker-registry under the same name:tag). */
  image: BenchImage;
  /** A multi-platform index tag (OCI index of linux/amd64 + linux/arm64). */
  index: BenchImage;
  /** A 1 MiB blob, and (full size only) a 1 GiB blob, in the main tree, for serve-mode blob GETs. */
  blob1MiB: BenchBlob;
  blob1GiB: BenchBlob | undefined;
  /** Repositories with 10 and with 10,000 tags, in the main tree. */
  tags10: string;
  tags10k: string;
  /** Generated trees (real record format) by repository count: 100, 10,000, 100,000 (smaller for tiny). */
  trees: { repositories: number; dataDir: string }[];
}

/** One measured figure, with its reference and target when it has them. */
export interface Row {
  /** e.g. "manifest HEAD by tag (redirect)". */
  measure: string;
  /** derrick's figure, in `unit`. */
  value: number;
  unit: string;
  /** The reference it is compared with (same unit), and which. */
  reference?: { name: string; value: number };
  /** value ÷ reference (or the relation the target is phrased in). */
  ratio?: number;
  /** The target, as in issue 4 ("≥ 10× docker-registry"), and whether this run met it. */
  target?: string;
  met?: boolean;
  /** Anything worth a word: rounds, spread, CPU µs per request, what limits it. */
  note?: string;
}

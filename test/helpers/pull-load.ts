/**
 * A pull load that counts every failure honestly: `clients` keep-alive clients (one connection each, as docker's
 * and containerd's transports keep one), each GETting the targets in turn as fast as answers come and checking
 * every body against its digest. A failure is a connection error (refused, reset, hung up, no answer in 30 s), a
 * status other than 2xx, or a body whose sha256 is not the digest. Used by the rolling-restart e2e test and benchmark.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';

export interface PullTarget {
  /** `/v2/<name>/manifests/<reference>` or `/v2/<name>/blobs/<digest>`. */
  path: string;
  digest: string;
  /** An Accept header (manifests). */
  accept?: string;
}

export interface PullResult {
  requests: number;
  failed: number;
  /** What failed, by kind (`ECONNRESET`, `status 503`, `digest mismatch`…), with counts. */
  failures: Record<string, number>;
}

export interface PullLoad {
  /** Stops the clients after their current request, and what they saw. */
  stop(): Promise<PullResult>;
}

function get(agent: http.Agent, port: number, target: PullTarget): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = http.get(
      {
        host: '127.0.0.1',
        port,
        path: target.path,
        agent,
        headers: target.accept === undefined ? {} : { accept: target.accept },
      },
      (response) => {
        const hash = createHash('sha256');
        response.on('data', (chunk: Buffer) => hash.update(chunk));
        response.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          if (status < 200 || status > 299) resolve(`status ${status}`);
          else if (!response.complete) resolve('cut short');
          else if (`sha256:${hash.digest('hex')}` !== target.digest) resolve('digest mismatch');
          else resolve(undefined);
        });
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    // A connection nobody answers (one lost between workers) is a failure too, not a hang.
    request.setTimeout(30_000, () => request.destroy(new Error('no answer in 30 s')));
  });
}

/** Starts the load on `127.0.0.1:<port>`. */
export function startPullLoad(port: number, targets: PullTarget[], clients = 16): PullLoad {
  const result: PullResult = { requests: 0, failed: 0, failures: {} };
  let running = true;
  const loops = Array.from({ length: clients }, async (_, client) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = client; running; i++) {
      const target = targets[i % targets.length];
      if (!target) break;
      const failure = await get(agent, port, target);
      result.requests++;
      if (failure !== undefined) {
        result.failed++;
        result.failures[failure] = (result.failures[failure] ?? 0) + 1;
      }
    }
    agent.destroy();
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** What a pull of `name:tag` from `url` GETs: its manifest by tag and by digest, its config and its layers. */
export async function pullTargets(url: string, name: string, tag: string): Promise<PullTarget[]> {
  const answer = await fetch(`${url}/v2/${name}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
  const digest = answer.headers.get('docker-content-digest');
  if (answer.status !== 200 || digest === null) throw new Error(`GET ${name}:${tag}: ${answer.status}`);
  const manifest = (await answer.json()) as { config: { digest: string }; layers: { digest: string }[] };
  return [
    { path: `/v2/${name}/manifests/${tag}`, digest, accept: OCI_MANIFEST },
    { path: `/v2/${name}/manifests/${digest}`, digest, accept: OCI_MANIFEST },
    ...[manifest.config, ...manifest.layers].map((blob) => ({
      path: `/v2/${name}/blobs/${blob.digest}`,
      digest: blob.digest,
    })),
  ];
}

/**
 * The SHA-256 of each part of a multipart upload — the x-amz-content-sha256 SigV4 signs and the store checks the
 * received body against — computed on a worker thread, beside the object digest the main thread computes over the
 * same bytes (put-verified.ts). Without it the SDK hashes every part on the main thread, after our own hash of it:
 * two SHA-256 passes in a row on one core. Parts live in SharedArrayBuffers, so the worker reads the very memory
 * the request then sends; nothing is copied. (crypto.subtle.digest would run in the thread pool, but it copies
 * its input first, and measured slower than hashing in place.)
 */
import { Worker } from 'node:worker_threads';

/** The worker's whole program (CommonJS, evaluated: no file to find from src/ or dist/). */
const PROGRAM = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, buffer, offset, length }) => {
  try {
    const hex = createHash('sha256').update(new Uint8Array(buffer, offset, length)).digest('hex');
    parentPort.postMessage({ id, hex });
  } catch (error) {
    parentPort.postMessage({ id, error: String(error) });
  }
});
`;

interface Answer {
  id: number;
  hex?: string;
  error?: string;
}

interface Waiting {
  resolve: (hex: string) => void;
  reject: (error: Error) => void;
}

/** One worker for the process, started at the first part and holding the process open only while it hashes. */
class PartHasher {
  #worker: Worker | undefined;
  #next = 0;
  readonly #waiting = new Map<number, Waiting>();

  sha256(part: Uint8Array): Promise<string> {
    if (!(part.buffer instanceof SharedArrayBuffer))
      return Promise.reject(new TypeError('a part to hash must live in a SharedArrayBuffer'));
    const worker = this.#start();
    const id = this.#next++;
    return new Promise<string>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      if (this.#waiting.size === 1) worker.ref();
      worker.postMessage({ id, buffer: part.buffer, offset: part.byteOffset, length: part.byteLength });
    });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(PROGRAM, { eval: true });
    worker.unref();
    worker.on('message', ({ id, hex, error }: Answer) => {
      const waiting = this.#waiting.get(id);
      this.#waiting.delete(id);
      if (this.#waiting.size === 0) worker.unref();
      if (hex === undefined) waiting?.reject(new Error(`hashing a part failed: ${error ?? 'no answer'}`));
      else waiting?.resolve(hex);
    });
    const fail = (error: Error): void => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const waiting of this.#waiting.values()) waiting.reject(error);
      this.#waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the part-hashing worker exited (${code})`)));
    this.#worker = worker;
    return worker;
  }
}

const hasher = new PartHasher();

/** The lowercase hex SHA-256 of `part`, which must be a view of a SharedArrayBuffer. */
export function partSha256(part: Uint8Array): Promise<string> {
  return hasher.sha256(part);
}

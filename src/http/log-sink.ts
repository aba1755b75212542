/**
 * stdout for the server's log lines, written in batches as nginx writes an access log with `buffer=64k flush=…`:
 * lines wait in memory until 64 KiB have gathered or 100 ms have passed since the first of them, then go out in one
 * write(2). pino's own asynchronous stream (sonic-boom) measures the bytes of everything it has buffered again at
 * every line, and writes every few lines through the thread pool: in a CPU profile of manifest GETs under load the
 * two took ~9 µs of a request's 60–90 (bench/README.md, "Issue 11 run").
 *
 * A line of pino's at level warn or above (`{"level":40` and up) is written at once, after what is pending (so
 * order is kept): warnings and errors are rare and someone may be waiting for them.
 *
 * The write is synchronous, so lines keep their order and a batch is whole on exit: what is pending is written
 * when the process exits, however it exits short of a SIGKILL. A reader that stops reading (a full pipe) makes the
 * write wait, as it makes nginx's; a reader that has gone (EPIPE) or any other failure drops the batch: a log line
 * never takes the server down.
 */
import { writeSync } from 'node:fs';

const BATCH_BYTES = 64 * 1024;
const FLUSH_MS = 100;

export class LineSink {
  private pending: string[] = [];
  private size = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fd: number,
    private readonly batchBytes = BATCH_BYTES,
    private readonly flushMs = FLUSH_MS,
  ) {}

  /** Queues `text` (whole lines); the stream interface pino writes to. */
  write(text: string): boolean {
    return this.append(text, urgent(text));
  }

  /** Queues `text` (whole lines) whose urgency the caller knows: the access log's, never urgent, unread. */
  append(text: string, now = false): boolean {
    this.pending.push(text);
    this.size += text.length;
    if (this.size >= this.batchBytes || now) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
    return true;
  }

  /** Writes what is pending now. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    this.size = 0;
    writeFully(this.fd, data);
  }
}

const LEVEL = '{"level":';
const FOUR = '4'.charCodeAt(0);

/** A pino line of level 40 (warn) or above: its level's first digit is 4 or more. */
function urgent(text: string): boolean {
  return text.startsWith(LEVEL) && text.charCodeAt(LEVEL.length) >= FOUR;
}

const pause = new Int32Array(new SharedArrayBuffer(4));

function writeFully(fd: number, data: Buffer): void {
  let offset = 0;
  let waits = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(fd, data, offset);
    } catch (error) {
      // A non-blocking pipe that is full: wait for its reader (up to 10 s, then drop the rest).
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN' && waits++ < 10_000) {
        Atomics.wait(pause, 0, 0, 1);
        continue;
      }
      return;
    }
  }
}

let stdout: LineSink | undefined;

/** The process's one sink for fd 1 (every app of the process shares it, so lines stay in order). */
export function stdoutLines(): LineSink {
  if (stdout === undefined) {
    const sink = new LineSink(1);
    process.once('exit', () => sink.flush());
    stdout = sink;
  }
  return stdout;
}

/**
 * The access log's line for one request, written once it has ended (completed or cut short): as pino JSON through
 * the app's logger (`accessLogFormat: json`), or in the combined log format of nginx and Apache
 * (`accessLogFormat: combined`), byte for byte what nginx's `log_format combined` writes, so tools made for those
 * logs (goaccess, awk scripts) read it:
 *
 *     $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
 *
 * Health probes and scrapes (paths starting with `/livez`, `/readyz`, `/metrics`) are logged at debug only.
 */
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { LineSink, stdoutLines } from './log-sink.ts';

export type AccessLogFormat = 'json' | 'combined';

/** Everything the line says about one request. */
export interface AccessEntry {
  method: string;
  /** The request target as sent (path and query). */
  path: string;
  httpVersion: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  /** From its first byte read to its last written, in milliseconds. */
  durationMs: number;
  /** The client's address, as the trusted proxies give it. */
  client: string;
  /** The first identity proved (`user:alice`, `cert:ci.example.com`), if any. */
  user: string | undefined;
  repository: string | undefined;
  redirected: boolean;
  /** False when the connection closed before the response was complete. */
  completed: boolean;
  referer: string | undefined;
  userAgent: string | undefined;
  /** When the request arrived (ms since the epoch). */
  at: number;
}

const QUIET = /^\/(?:livez|readyz|metrics)(?:[/?]|$)/;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** nginx's $time_local: `02/Dec/2026:05:40:51 +0100`. */
export function timeLocal(at: number): string {
  const date = new Date(at);
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const zone = `${sign}${two(Math.floor(Math.abs(offset) / 60))}${two(Math.abs(offset) % 60)}`;
  return `${two(date.getDate())}/${MONTHS[date.getMonth()] ?? '?'}/${date.getFullYear()}:${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())} ${zone}`;
}

/** As nginx escapes variables in its log (escape=default): `"`, `\`, control and non-ASCII bytes as `\xHH`. */
export function escapeField(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte === 0x22 || byte === 0x5c || byte < 0x20 || byte > 0x7e
        ? `\\x${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}

const dash = (text: string | undefined): string =>
  text === undefined || text === '' ? '-' : escapeField(text);

/** One line of the combined log format (no newline). */
export function combinedLine(entry: AccessEntry): string {
  const request = `${entry.method} ${entry.path} HTTP/${entry.httpVersion}`;
  return `${dash(entry.client)} - ${dash(entry.user)} [${timeLocal(entry.at)}] "${escapeField(request)}" ${entry.status} ${entry.bytes} "${dash(entry.referer)}" "${dash(entry.userAgent)}"`;
}

const S = pino.symbols;

/** The pino internals a line is made of, read through `pino.symbols` (pino's documented way in for integrations). */
interface PinoParts {
  [S.chindingsSym]: string;
  [S.endSym]: string;
  [S.lsCacheSym]: Record<number, string>;
  [S.messageKeySym]: string;
  [S.streamSym]: { write(text: string): unknown };
  [S.timeSym]: () => string;
}

const INFO = 30;
const DEBUG = 20;

/**
 * The line pino writes for `log.info(fields, 'request')` (level, time, the logger's bindings — pid, hostname,
 * reqId —, the fields in order, msg), byte for byte, but built here: pino's general path (a loop over the object,
 * its serializers, its own string escaping) cost ~5 µs of a manifest GET's 50–100 in a CPU profile. Strings are
 * escaped by JSON.stringify; the line goes to the logger's own stream, after the lines before it.
 */
export function jsonLine(log: pino.Logger, level: number, entry: AccessEntry): string {
  const parts = log as unknown as PinoParts;
  let line = `${parts[S.lsCacheSym][level] ?? `{"level":${level}`}${parts[S.timeSym]()}${parts[S.chindingsSym]}`;
  line += `,"method":${JSON.stringify(entry.method)},"path":${JSON.stringify(entry.path)}`;
  line += `,"status":${entry.status},"bytes":${entry.bytes}`;
  line += `,"durationMs":${Math.round(entry.durationMs * 1000) / 1000},"client":${JSON.stringify(entry.client)}`;
  if (entry.user !== undefined) line += `,"user":${JSON.stringify(entry.user)}`;
  if (entry.repository !== undefined) line += `,"repository":${JSON.stringify(entry.repository)}`;
  line += `,"redirected":${entry.redirected}`;
  if (!entry.completed) line += ',"completed":false';
  if (entry.userAgent !== undefined) line += `,"userAgent":${JSON.stringify(entry.userAgent)}`;
  return `${line},${JSON.stringify(parts[S.messageKeySym])}:"request"${parts[S.endSym]}`;
}

/** Writes each request's line in `format`; JSON lines to the stream of `log` (the request's logger). */
export class AccessLog {
  private readonly out: LineSink | undefined;

  constructor(private readonly format: AccessLogFormat) {
    // As the JSON lines go: whole lines to stdout, written in batches.
    this.out = format === 'combined' ? stdoutLines() : undefined;
  }

  write(entry: AccessEntry, log: FastifyBaseLogger): void {
    const logger = log as unknown as pino.Logger;
    const level = QUIET.test(entry.path) ? DEBUG : INFO;
    if (level === DEBUG && !logger.isLevelEnabled('debug')) return;
    if (this.out) {
      this.out.append(`${combinedLine(entry)}\n`);
      return;
    }
    if (level === INFO && !logger.isLevelEnabled('info')) return;
    const stream = (logger as unknown as PinoParts)[S.streamSym];
    const line = jsonLine(logger, level, entry);
    // Into the batch without reading the line's level back (a copy of each line): it is info or debug.
    if (stream instanceof LineSink) stream.append(line);
    else stream.write(line);
  }
}

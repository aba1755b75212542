/**
 * nginx in front of `derrick serve --serve-sendfile x-accel-redirect`, configured exactly as docs/operations.md
 * shows it: the documented `server` block is read from the doc and only its addresses are replaced (the listen
 * address, derrick's address, the tree's content directory), so the tested configuration is the documented one.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './cli.ts';
import { startNginxWith, wholeConfig, type NginxServer } from './nginx.ts';

export const SENDFILE_DOC = path.join(REPO_ROOT, 'docs', 'operations.md');
export const SENDFILE_DOC_HEADING = '## nginx sendfile';

/** The first `nginx` code block under the heading, verbatim. */
export function documentedSendfileConfig(): string {
  const doc = readFileSync(SENDFILE_DOC, 'utf8');
  const start = doc.indexOf(`\n${SENDFILE_DOC_HEADING}\n`);
  if (start < 0) throw new Error(`${SENDFILE_DOC}: no "${SENDFILE_DOC_HEADING}" section`);
  const next = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, next < 0 ? undefined : next);
  const block = /\n```nginx\n([\s\S]*?)\n```\n/.exec(section)?.[1];
  if (block === undefined) throw new Error(`${SENDFILE_DOC}: no nginx block under "${SENDFILE_DOC_HEADING}"`);
  return block;
}

/**
 * The documented server block with the test's addresses, inside a complete nginx.conf (wholeConfig). Each
 * replaced line must occur exactly once: a documented block of another shape is an error, not a silent mismatch.
 */
export function sendfileNginxConfig(options: {
  listen: string;
  upstream: string;
  contentDir: string;
  runDir: string;
}): string {
  let config = documentedSendfileConfig();
  const replace = (pattern: RegExp, by: string): void => {
    let count = 0;
    config = config.replace(pattern, (_match, lead: string) => {
      count++;
      return `${lead}${by}`;
    });
    if (count !== 1)
      throw new Error(`${SENDFILE_DOC}: ${count} lines like ${pattern} in the nginx block, not 1`);
  };
  replace(/^(\s*listen )\S+;/gm, `${options.listen};`);
  replace(/^(\s*proxy_pass )http:\/\/\S+;/gm, `http://${options.upstream};`);
  replace(/^(\s*alias )\S+;/gm, `"${options.contentDir}/";`);
  const lines = config.split('\n');
  if (lines[0] !== 'server {' || lines[lines.length - 1] !== '}')
    throw new Error(`${SENDFILE_DOC}: the nginx block is not one server { … } block`);
  return wholeConfig(options.runDir, lines.slice(1, -1));
}

/** Starts nginx with the documented sendfile configuration in front of `upstream` (`127.0.0.1:<port>`). */
export function startSendfileNginx(upstream: string, contentDir: string): Promise<NginxServer> {
  return startNginxWith(
    (listen, runDir) => sendfileNginxConfig({ listen, upstream, contentDir, runDir }),
    {},
  );
}

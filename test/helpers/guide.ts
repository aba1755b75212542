/**
 * Running a Markdown guide as a test (docs/getting-started.md): its command blocks, in order, in one shell.
 *
 * The conventions a guide follows (parseGuide refuses anything else):
 * - A ```sh block is commands, run as they are in one long-lived bash (`set -eo pipefail`), so `cd`, variables
 *   and background jobs carry over from block to block, as in the reader's terminal.
 * - A block ending in a background command (`… &`, optionally with a `# comment`) starts a server: that line
 *   must name the address it listens on (`127.0.0.1:<port>`, in the command or its comment), and the next block
 *   runs once that address accepts connections.
 * - An ```output block right after a ```sh block is what those commands print (stdout and stderr together). Each
 *   of its lines must be printed, in that order; lines it leaves out are allowed, `…` stands for any text within a
 *   line, and runs of spaces or tabs count as one space.
 * - Any other fenced block (a config file shown for reading) is not run, and may not be marked as shell.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited } from './processes.ts';

export interface GuideBlock {
  /** Line of the opening fence (1-based), for messages. */
  line: number;
  /** The commands, as the guide shows them. */
  commands: string;
  /** The output block that follows, if any. */
  expected?: string;
  /** When the last command is a background server (`… &`): the address it listens on, as the guide shows it. */
  listens?: string;
}

export interface GuideSection {
  /** The `## ` heading. */
  title: string;
  blocks: GuideBlock[];
}

const SHELL_LANGUAGES = new Set(['sh', 'bash', 'shell', 'console', 'shell-session', '']);
/** A command line ending in `&` (not `&&`), perhaps with a comment after it. */
const BACKGROUND = /(?<!&)&\s*(#.*)?$/;

/** The guide's sections (`## ` headings) with their command blocks, in order. Throws on a broken convention. */
export function parseGuide(markdown: string, file = 'guide'): GuideSection[] {
  const lines = markdown.split('\n');
  const sections: GuideSection[] = [];
  let previous: { kind: string; block?: GuideBlock } = { kind: 'text' };
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i] ?? '';
    const heading = /^## (.+)$/.exec(text);
    if (heading) {
      sections.push({ title: heading[1] ?? '', blocks: [] });
      previous = { kind: 'text' };
      continue;
    }
    const fence = /^```(.*)$/.exec(text);
    if (!fence) {
      if (text.trim() !== '') previous = { kind: 'text' };
      continue;
    }
    const start = i + 1;
    const info = (fence[1] ?? '').trim();
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i] ?? '');
    if (i >= lines.length) throw new Error(`${file}:${start}: unclosed code block`);
    const content = body.join('\n');
    const where = `${file}:${start}`;
    if (info === 'sh') {
      const section = sections.at(-1);
      if (!section) throw new Error(`${where}: a command block before the first "## " section`);
      const commandLines = body.filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
      const last = commandLines.at(-1) ?? '';
      if (commandLines.slice(0, -1).some((line) => BACKGROUND.test(line)))
        throw new Error(`${where}: a background command (… &) must be the block's last command`);
      const block: GuideBlock = { line: start, commands: content };
      if (BACKGROUND.test(last)) {
        const address = /127\.0\.0\.1:\d+/.exec(last)?.[0];
        if (address === undefined)
          throw new Error(`${where}: a background command must name the address it listens on`);
        block.listens = address;
      }
      section.blocks.push(block);
      previous = { kind: 'sh', block };
    } else if (info === 'output') {
      if (previous.kind !== 'sh' || !previous.block)
        throw new Error(`${where}: an output block must follow a command block`);
      if (previous.block.listens !== undefined)
        throw new Error(`${where}: a block that starts a server has no output to check`);
      previous.block.expected = content;
      previous = { kind: 'output' };
    } else if (SHELL_LANGUAGES.has(info.split(/\s/)[0] ?? '')) {
      throw new Error(`${where}: a shell block must be \`\`\`sh (run by the test), not \`\`\`${info}`);
    } else {
      previous = { kind: 'other' };
    }
  }
  return sections;
}

/** Replaces each key of `table` in `text` by its value (the guide's fixed addresses → free ones). */
export function substitute(text: string, table: Readonly<Record<string, string>>): string {
  let result = text;
  for (const [from, to] of Object.entries(table)) result = result.split(from).join(to);
  return result;
}

/** Terminal colours and cursor moves, should a command print any. */
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');

function normalise(line: string): string {
  return line.replace(ANSI_ESCAPE, '').replace(/\s+/g, ' ').trim();
}

function linePattern(expected: string): RegExp {
  const parts = normalise(expected)
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`);
}

/**
 * Checks that every line of `expected` is a line of `actual`, in order (see the conventions above). Returns
 * undefined when it is, else which expected line was not found.
 */
export function checkOutput(expected: string, actual: string): string | undefined {
  const printed = actual.split(/\r?\n/).map(normalise);
  let at = 0;
  for (const line of expected.split('\n')) {
    if (normalise(line) === '') continue;
    const pattern = linePattern(line);
    const found = printed.findIndex((candidate, index) => index >= at && pattern.test(candidate));
    if (found < 0) return `expected a line ${JSON.stringify(line.trim())} (after what matched before)`;
    at = found + 1;
  }
  return undefined;
}

/** Resolves once `address` (`host:port`) accepts a TCP connection; rejects when `alive()` turns false. */
export async function waitForListening(
  address: string,
  alive: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const [host = '', port = ''] = address.split(/:(?=\d+$)/);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port: Number(port) });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (connected) return;
    if (!alive()) throw new Error(`the shell exited while waiting for ${address}`);
    if (Date.now() > deadline) throw new Error(`nothing listens on ${address} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export interface BlockResult {
  /** What the block printed (stdout and stderr, interleaved as they came). */
  output: string;
}

/**
 * One bash for the whole guide, in its own process group (so `stop` ends every background job with it). Each
 * block is written to a file under `scriptDir` and sourced with stdin from /dev/null; a marker line after it
 * says it is done. Under `set -e` a failing command ends the shell, and `run` rejects with the block's output.
 */
export class GuideShell {
  readonly #child: ChildProcess;
  #output = '';
  #count = 0;
  readonly #scriptDir: string;

  constructor(options: { cwd: string; env: NodeJS.ProcessEnv; scriptDir: string }) {
    this.#scriptDir = options.scriptDir;
    this.#child = spawn('bash', ['--noprofile', '--norc', '-s'], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const collect = (chunk: Buffer): void => {
      this.#output += chunk.toString();
    };
    this.#child.stdout?.on('data', collect);
    this.#child.stderr?.on('data', collect);
    this.#child.stdin?.write('set -eo pipefail\nexec 2>&1\n');
  }

  alive(): boolean {
    return !exited(this.#child);
  }

  /** Runs one block's commands; resolves with what they printed once they are done. */
  async run(commands: string, timeoutMs: number): Promise<BlockResult> {
    const number = ++this.#count;
    const file = path.join(this.#scriptDir, `block-${number}.sh`);
    writeFileSync(file, `${commands}\n`);
    const marker = `__guide_block_${number}_done__`;
    const from = this.#output.length;
    this.#child.stdin?.write(`. '${file}' < /dev/null\necho ${marker}\n`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.#output.indexOf(`${marker}\n`, from);
      if (at >= 0) return { output: this.#output.slice(from, at) };
      const printed = this.#output.slice(from);
      if (!this.alive())
        throw new Error(
          `the commands failed (exit ${this.#child.exitCode ?? this.#child.signalCode}):\n${printed}`,
        );
      if (Date.now() > deadline)
        throw new Error(`the commands had not finished after ${timeoutMs} ms:\n${printed}`);
      await sleep(25);
    }
  }

  /** SIGTERM to the shell's process group (every background job), then SIGKILL to what lingers. */
  async stop(): Promise<void> {
    const group = this.#child.pid;
    if (group === undefined) return;
    const signal = (name: NodeJS.Signals | 0): boolean => {
      try {
        process.kill(-group, name);
        return true;
      } catch {
        return false; // ESRCH: nobody left in the group
      }
    };
    this.#child.stdin?.end();
    if (!signal('SIGTERM')) return;
    for (let waited = 0; waited < 10_000; waited += 50) {
      if (!signal(0)) return;
      await sleep(50);
    }
    signal('SIGKILL');
    for (let waited = 0; waited < 5_000 && signal(0); waited += 50) await sleep(50);
  }
}

/**
 * Runs one command block of `guide` in `session` (its placeholders replaced from `places`), waits for the server
 * it starts, and checks its output; an error names the guide's line.
 */
export async function runGuideBlock(
  session: GuideShell,
  block: GuideBlock,
  guide: { name: string; places: Readonly<Record<string, string>>; timeoutMs: number },
): Promise<void> {
  const { places, timeoutMs } = guide;
  try {
    const { output } = await session.run(substitute(block.commands, places), timeoutMs);
    if (block.listens !== undefined)
      await waitForListening(substitute(block.listens, places), () => session.alive(), timeoutMs);
    if (block.expected === undefined) return;
    const mismatch = checkOutput(substitute(block.expected, places), output);
    if (mismatch !== undefined) throw new Error(`${mismatch}; the commands printed:\n${output}`);
  } catch (error) {
    throw new Error(
      `${guide.name}:${block.line}: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Ctrl-C (SIGINT) and SIGTERM while a command writes into the tree: instead of dying mid-write, the command's
 * AbortSignal aborts, and the command cleans up, says what happened, and exits 128 + the signal's number (130, 143)
 * as a shell expects. Later signals are ignored: the cleanup is short, and a second Ctrl-C must not cut it off.
 */
import os from 'node:os';

export interface Interrupts {
  readonly signal: AbortSignal;
  /** The first signal received, if any. */
  received(): NodeJS.Signals | undefined;
  /** 128 + the number of the signal received. */
  exitCode(): number;
  /** Restores the default handling. */
  release(): void;
}

const HANDLED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

export function catchInterrupts(): Interrupts {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (name: NodeJS.Signals): void => {
    if (received !== undefined) return;
    received = name;
    controller.abort();
  };
  for (const name of HANDLED) process.on(name, onSignal);
  return {
    signal: controller.signal,
    received: () => received,
    exitCode: () => 128 + (received === undefined ? 0 : os.constants.signals[received]),
    release: () => {
      for (const name of HANDLED) process.off(name, onSignal);
    },
  };
}

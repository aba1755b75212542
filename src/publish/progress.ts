/** How long operations report progress; the CLI renders it (a bar on a TTY, plain lines otherwise, or nothing). */
export interface Progress {
  /** A new phase with the bytes it will move (0 when unknown). */
  phase(label: string, totalBytes: number): void;
  bytes(count: number): void;
  /** Something worth a line of its own (waiting for a lock, a layer skipped). */
  note(message: string): void;
  done(): void;
}

export const silentProgress: Progress = {
  phase: () => undefined,
  bytes: () => undefined,
  note: () => undefined,
  done: () => undefined,
};

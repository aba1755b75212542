/**
 * Reads of one key shared by the requests that arrive together — never a read that began before a request arrived,
 * so every answer still comes from a read that started after its request (a publish completed before a request is
 * seen by it). A request either starts a read or waits for the next one to start; it never joins one under way.
 *
 * Up to `maxInFlight` reads of a key run at once, started at least half a read's last duration apart. With one, a
 * request arriving mid-read waits for the rest of that read and all of the next (about two round trips); with two,
 * started half a round trip apart, for about one and a quarter, for at most twice the reads of a hot key (which,
 * against RGW on this machine, bought no more answers per second: RecordCache uses one). A key with nothing in
 * flight is forgotten.
 */
interface Pending<T> {
  promise: Promise<T>;
  resolve: (result: Promise<T>) => void;
}

interface KeyState<T> {
  inFlight: number;
  /** When the newest read started (performance.now()). */
  lastStart: number;
  /** How long the last read took (ms); Infinity before the first lands: no second read until then. */
  lastMs: number;
  /** The requests waiting for the next read, if any. */
  pending: Pending<T> | undefined;
}

export class Flights<T> {
  private readonly keys = new Map<string, KeyState<T>>();

  constructor(
    private readonly maxInFlight = 2,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The result of a `read` of `key` that starts now or later, shared with the requests that wait with this one. */
  run(key: string, read: () => Promise<T>): Promise<T> {
    let state = this.keys.get(key);
    if (!state) {
      state = { inFlight: 0, lastStart: 0, lastMs: Infinity, pending: undefined };
      this.keys.set(key, state);
    }
    if (!state.pending && this.mayStart(state)) return this.start(key, state, read);
    let pending = state.pending;
    if (!pending) {
      let resolve!: (result: Promise<T>) => void;
      const promise = new Promise<T>((done) => (resolve = done));
      pending = state.pending = { promise, resolve };
    }
    if (this.mayStart(state)) this.launch(key, state, read);
    return pending.promise;
  }

  /** Reads in flight, for tests. */
  inFlight(key: string): number {
    return this.keys.get(key)?.inFlight ?? 0;
  }

  private mayStart(state: KeyState<T>): boolean {
    if (state.inFlight === 0) return true;
    return state.inFlight < this.maxInFlight && this.now() - state.lastStart >= state.lastMs / 2;
  }

  private launch(key: string, state: KeyState<T>, read: () => Promise<T>): void {
    const pending = state.pending;
    state.pending = undefined;
    pending?.resolve(this.start(key, state, read));
  }

  private start(key: string, state: KeyState<T>, read: () => Promise<T>): Promise<T> {
    const started = this.now();
    state.inFlight++;
    state.lastStart = started;
    const result = read();
    const land = (): void => {
      state.inFlight--;
      state.lastMs = this.now() - started;
      if (state.pending) this.launch(key, state, read);
      else if (state.inFlight === 0) this.keys.delete(key);
    };
    result.then(land, land);
    return result;
  }
}

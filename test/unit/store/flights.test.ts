/**
 * Flights (src/store/flights.ts): whatever the order of arrivals, landings and the clock, every request is
 * answered by a read that started after it arrived, never more than `maxInFlight` reads of a key run at once, and
 * requests that arrive while reads are under way share the next one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Flights } from '../../../src/store/flights.ts';
import { fc, holds } from '../../helpers/property.ts';

const file = import.meta.filename;

interface Read {
  id: number;
  startedAt: number;
  land: () => void;
}

function model(maxInFlight: number) {
  let clock = 0;
  let started = 0;
  const running: Read[] = [];
  const flights = new Flights<number>(maxInFlight, () => clock);
  const read = (): Promise<number> =>
    new Promise<number>((resolve) => {
      const id = ++started;
      running.push({ id, startedAt: clock, land: () => resolve(id) });
    });
  return {
    flights,
    read,
    running,
    tick: (ms: number) => (clock += ms),
    get clock() {
      return clock;
    },
    get started() {
      return started;
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('Flights: every answer comes from a read started after its request, and at most maxInFlight run at once', async () => {
  const step = fc.oneof(
    fc.record({ kind: fc.constant('request' as const) }),
    fc.record({ kind: fc.constant('land' as const), which: fc.nat({ max: 3 }) }),
    fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 10 }) }),
  );
  await holds(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 3 }),
      fc.array(step, { maxLength: 60 }),
      async (max, steps) => {
        const m = model(max);
        const startTimes = new Map<number, number>();
        const answers: Promise<void>[] = [];
        for (const s of steps) {
          if (s.kind === 'tick') m.tick(s.ms);
          else if (s.kind === 'land') {
            const read = m.running.splice(s.which % Math.max(1, m.running.length), 1)[0];
            read?.land();
            await settle();
          } else {
            const arrived = m.clock;
            const before = m.started;
            answers.push(
              m.flights.run('k', m.read).then((id) => {
                // Reads are numbered in start order: the one answering started after this request arrived.
                assert.ok(id > before, `request at ${arrived} answered by read ${id}, started before it`);
              }),
            );
          }
          for (const r of m.running) startTimes.set(r.id, r.startedAt);
          assert.ok(m.running.length <= max, `${m.running.length} reads at once, max ${max}`);
          assert.equal(m.flights.inFlight('k'), m.running.length);
        }
        while (m.running.length > 0) {
          m.running.shift()?.land();
          await settle();
        }
        await Promise.all(answers);
      },
    ),
    { file, runs: 300 },
  );
});

test('Flights: the second read of a key starts only half a read after the first; requests in between wait for it', async () => {
  const m = model(2);
  const first = m.flights.run('k', m.read);
  // Before any read has landed its duration is unknown: everything waits for the next read.
  const waiting = m.flights.run('k', m.read);
  assert.equal(m.started, 1);
  m.tick(4);
  m.running.shift()?.land(); // took 4 ms; the waiting request's read starts
  await settle();
  assert.equal(await first, 1);
  assert.equal(m.started, 2);
  m.tick(1); // 1 ms after the newest start: less than half of 4 ms
  const soon = m.flights.run('k', m.read);
  assert.equal(m.started, 2, 'waits: the newest read started less than half a read ago');
  m.tick(1); // now 2 ms: a second read may start, and takes the one waiting along
  const later = m.flights.run('k', m.read);
  assert.equal(m.started, 3);
  assert.equal(m.flights.inFlight('k'), 2);
  for (const r of m.running.splice(0)) r.land();
  assert.equal(await waiting, 2);
  assert.equal(await soon, 3);
  assert.equal(await later, 3);
  await settle();
  assert.equal(m.flights.inFlight('k'), 0);
});

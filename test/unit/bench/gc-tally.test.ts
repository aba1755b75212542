/**
 * The bench's reading of V8's `--trace-gc` lines (GcTally): the pauses summed, incremental marking's steps
 * included, lines split across chunks joined, everything else ignored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GcTally } from '../../../bench/measures-startup.ts';

const LINES = [
  '[17254:0x30b1a250]       43 ms: Scavenge 4.6 (4.7) -> 4.1 (5.7) MB, 1.04 / 0.01 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
  'derrick: serving /srv/tree on http://127.0.0.1:5000 (mode serve)',
  '[17254:0x30b1a250]     2527 ms: Mark-Compact 16.5 (30.9) -> 12.7 (31.4) MB, 4.18 / 0.03 ms  (+ 1.5 ms in 18 steps since start of marking, biggest step 0.1 ms, walltime since start of marking 23 ms) (average mu = 1.000, current mu = 1.000) finalize incremental marking via task; GC in old space requested',
  '{"level":30,"time":1,"msg":"Scavenge 1.0 (2.0) -> 1.0 (2.0) MB, 9.00 / 0.00 ms in a log line"}',
].join('\n');

test('pauses and marking steps are summed; a line that only mentions a collection is not one', () => {
  const tally = new GcTally();
  tally.feed(Buffer.from(`${LINES}\n`));
  assert.equal(tally.count, 2);
  assert.equal(tally.ms.toFixed(2), '6.72'); // 1.04 + 4.18 + 1.5
});

test('a line split across chunks counts once, when it is whole; reset starts afresh', () => {
  const tally = new GcTally();
  const text = `${LINES}\n`;
  for (let at = 0; at < text.length; at += 7) tally.feed(Buffer.from(text.slice(at, at + 7)));
  assert.equal(tally.count, 2);
  tally.reset();
  assert.equal(tally.count, 0);
  assert.equal(tally.ms, 0);
});

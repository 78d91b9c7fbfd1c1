/**
 * The digest worker, as plain CommonJS source run with `new Worker(source, { eval: true })`.
 *
 * Inline source instead of a worker file: it needs no path resolution, so it behaves the same under tsx
 * (from .ts sources), from compiled JS in dist/, and bundled. It only uses node built-ins.
 *
 * Protocol, per job: the main thread posts { type: 'job', id, alg, ctrl, data, slotSize, slots, lane }, with
 * `ctrl` an Int32Array-sized SharedArrayBuffer (layout below) and `data` the ring of `slots` slots of
 * `slotSize` bytes. The producer fills slot (n % slots) and publishes it by storing `LEN[n % slots]` then
 * PRODUCED = n + 1, then bumps SEQ and notifies it. The worker hashes published slots in order straight from
 * shared memory (no copy), stores CONSUMED[lane] after each slot, bumps EPOCH and notifies it (the producer
 * waits on EPOCH with Atomics.waitAsync to reuse a slot once every lane has consumed it). STATE = DONE ends
 * the job once everything published is hashed (reply { type: 'result', id, hex }); STATE = ABORT ends it at
 * once (reply { type: 'aborted', id }). Errors reply { type: 'error', id, message }.
 */

export const CTRL_SEQ = 0;
export const CTRL_PRODUCED = 1;
export const CTRL_STATE = 2;
export const CTRL_EPOCH = 3;
export const CTRL_CONSUMED = 4;
export const MAX_LANES = 8;
export const CTRL_LEN = CTRL_CONSUMED + MAX_LANES;
export const MAX_SLOTS = 64;
export const CTRL_WORDS = CTRL_LEN + MAX_SLOTS;

export const STATE_RUNNING = 0;
export const STATE_DONE = 1;
export const STATE_ABORT = 2;

export interface JobMessage {
  type: 'job';
  id: number;
  alg: string;
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  slotSize: number;
  slots: number;
  lane: number;
}

export type WorkerReply =
  { type: 'result'; id: number; hex: string } | { type: 'aborted'; id: number } | { type: 'error'; id: number; message: string };

export const WORKER_SOURCE = `'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const SEQ = ${CTRL_SEQ}, PRODUCED = ${CTRL_PRODUCED}, STATE = ${CTRL_STATE}, EPOCH = ${CTRL_EPOCH};
const CONSUMED = ${CTRL_CONSUMED}, LEN = ${CTRL_LEN};
const DONE = ${STATE_DONE}, ABORT = ${STATE_ABORT};

function run(m) {
  const ctrl = new Int32Array(m.ctrl);
  const views = [];
  for (let k = 0; k < m.slots; k++) views.push(new Uint8Array(m.data, k * m.slotSize, m.slotSize));
  const hash = createHash(m.alg);
  let consumed = 0;
  for (;;) {
    const seq = Atomics.load(ctrl, SEQ);
    const state = Atomics.load(ctrl, STATE);
    if (state === ABORT) return { type: 'aborted', id: m.id };
    let produced = Atomics.load(ctrl, PRODUCED);
    if (consumed < produced) {
      while (consumed < produced) {
        const k = consumed % m.slots;
        const len = Atomics.load(ctrl, LEN + k);
        hash.update(len === m.slotSize ? views[k] : views[k].subarray(0, len));
        consumed++;
        Atomics.store(ctrl, CONSUMED + m.lane, consumed);
        Atomics.add(ctrl, EPOCH, 1);
        Atomics.notify(ctrl, EPOCH);
        if (Atomics.load(ctrl, STATE) === ABORT) return { type: 'aborted', id: m.id };
        produced = Atomics.load(ctrl, PRODUCED);
      }
      continue;
    }
    if (state === DONE) return { type: 'result', id: m.id, hex: hash.digest('hex') };
    Atomics.wait(ctrl, SEQ, seq, 1000);
  }
}

parentPort.on('message', (m) => {
  if (!m || m.type !== 'job') return;
  let reply;
  try {
    reply = run(m);
  } catch (err) {
    reply = { type: 'error', id: m.id, message: String((err && err.message) || err) };
  }
  parentPort.postMessage(reply);
});
`;

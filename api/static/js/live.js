// One live connection to the alert stream per tab, shared by every view that wants changes.

import { ResumableStream } from "./sse.js";

const subscribers = new Set();
let stream = null;
let state = "off";
const stateListeners = new Set();

function setState(next) {
  state = next;
  for (const fn of stateListeners) fn(next);
}

function deliver(event) {
  let change;
  try {
    change = JSON.parse(event.data);
  } catch {
    return; // not JSON: nothing a view can use
  }
  if (!change || typeof change !== "object") return;
  for (const fn of [...subscribers]) {
    try {
      fn(change, event);
    } catch (err) {
      console.warn("alert stream subscriber failed", err);
    }
  }
}

/** Open the stream (idempotent). `path` is relative to /api/v1/. */
export function startLive(path = "stream") {
  if (stream) return;
  stream = new ResumableStream(path, { onEvent: deliver, onState: setState, onReset: () => deliver({ data: '{"type":"reset"}' }) });
  stream.start();
}

export function stopLive() {
  stream?.stop();
  stream = null;
  setState("off");
}

/**
 * fn(change, rawEvent) for every alert change, and fn({type: "reset"}) when the stream had to start
 * afresh (changes may have been missed: reload). Returns the unsubscribe function.
 */
export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

/** fn(state) now and whenever the connection state changes. */
export function onLiveState(fn) {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}

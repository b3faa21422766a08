// Server-sent events over fetch(), because EventSource cannot send an Authorization header.
//
// The parser follows the HTML standard's event-stream rules: lines end in CRLF, LF or CR; a line
// starting with ":" is a comment (heartbeat); `data` lines join with "\n"; `id` sets the last event
// id (kept across reconnects and sent back as Last-Event-ID so the server resumes after it);
// `retry` sets the reconnection delay; a blank line dispatches.

import { ApiError, apiUrl, authHeaders, endSession } from "./api.js";
import { t } from "./i18n.js";

/** Feed text chunks; call `onEvent({type, data, id})` for each complete event. */
export class EventStreamParser {
  constructor(onEvent, onRetry = () => {}) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.lastEventId = "";
  }

  push(chunk) {
    this.buffer += chunk;
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf("\r", start);
      const lf = this.buffer.indexOf("\n", start);
      if (cr < 0 && lf < 0) break;
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (this.buffer[end] === "\r" && end === this.buffer.length - 1) break; // CR now, LF may follow
      const line = this.buffer.slice(start, end);
      start = end + (this.buffer[end] === "\r" && this.buffer[end + 1] === "\n" ? 2 : 1);
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the server's heartbeat
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id") {
      if (!value.includes("\0")) this.lastEventId = value;
    } else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
  }

  dispatch() {
    if (this.data.length) {
      this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId });
    }
    this.data = [];
    this.type = "";
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/**
 * A resumable stream: connects, reads, and on any disconnect reconnects with the last event id
 * (including ids of events without data, which only move the position),
 * backing off (1 s doubling to 30 s, or the server's `retry`). `onState` hears "connecting",
 * "live", "reconnecting" and "off"; a connection silent for `idleTimeoutMs` (no event and no
 * heartbeat) is treated as dead.
 */
export class ResumableStream {
  constructor(path, { onEvent, onState = () => {}, onReset = () => {}, idleTimeoutMs = 45_000 } = {}) {
    this.path = path;
    this.onEvent = onEvent;
    this.onReset = onReset;
    this.onState = onState;
    this.idleTimeoutMs = idleTimeoutMs;
    this.lastEventId = "";
    this.retryMs = null;
    this.stopper = null;
    this.connections = 0;
  }

  start() {
    if (this.stopper) return;
    this.stopper = new AbortController();
    this.run(this.stopper.signal);
  }

  stop() {
    this.stopper?.abort();
    this.stopper = null;
    this.onState("off");
  }

  async run(stopped) {
    let backoff = 1000;
    while (!stopped.aborted) {
      this.onState(this.connections ? "reconnecting" : "connecting");
      const attempt = new AbortController();
      const abortAttempt = () => attempt.abort();
      stopped.addEventListener("abort", abortAttempt, { once: true });
      try {
        let headers;
        try {
          headers = { ...authHeaders(), Accept: "text/event-stream" };
        } catch {
          return; // signed out: the session-end handler takes over
        }
        if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
        const response = await fetch(apiUrl(this.path), {
          headers, signal: attempt.signal, cache: "no-store", credentials: "omit",
        });
        if (response.status === 400 && this.lastEventId) {
          // The server does not know our position (not one it issued): start afresh, and let the
          // views reload what they show, since changes in between cannot be replayed.
          this.lastEventId = "";
          this.onReset();
          continue;
        }
        if (response.status === 401) {
          endSession(t("session.ended")); // expired, or the key was revoked
          return;
        }
        if (response.status === 403) throw new ApiError(403, "the stream refused this credential");
        if (!response.ok || !response.body) throw new Error(`the stream answered ${response.status}`);
        this.connections += 1;
        this.onState("live");
        backoff = 1000;
        await this.read(response.body, attempt);
      } catch (err) {
        if (stopped.aborted) return;
        if (err instanceof ApiError) {
          // A stream refused for the credential will not heal by retrying fast.
          backoff = 30_000;
        }
      } finally {
        stopped.removeEventListener("abort", abortAttempt);
      }
      if (stopped.aborted) return;
      this.onState("reconnecting");
      const delay = this.retryMs ?? backoff;
      await sleep(delay * (0.8 + Math.random() * 0.4), stopped);
      backoff = Math.min(backoff * 2, 30_000);
    }
  }

  async read(body, attempt) {
    const parser = new EventStreamParser(
      (event) => this.onEvent(event),
      (ms) => { this.retryMs = ms; },
    );
    parser.lastEventId = this.lastEventId;
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let idle = null;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => attempt.abort(), this.idleTimeoutMs);
    };
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        arm();
        parser.push(value);
        // Id-only events move the position too (changes this client does not see went by).
        this.lastEventId = parser.lastEventId;
      }
    } finally {
      clearTimeout(idle);
      reader.releaseLock();
    }
  }
}

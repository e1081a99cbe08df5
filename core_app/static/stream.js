// One conversation's live output stream, kept open by the page itself.
//
// An EventSource reconnects by itself only after a clean end of the body; any non-200 (a 503 while Memory is
// down, a 401 for an expired ticket) or a refused connection closes it for good. So every connection error
// closes it here, and the page opens a new one after a back-off (0.5 s doubling to 10 s, with jitter), with a
// fresh ticket and the last event id seen: the server replays what was missed, exactly once.
//
// The back-off starts over only once a stream has proved itself: it stayed up STABLE_MS, or delivered an event
// after `connected`. A stream that drops right after connecting is reopened no sooner than the server's
// `retry:` (3 s), and keeps backing off. A stream that keeps failing before `connected` while its ticket is
// granted (say the server cannot parse the last event id: 400) forgets that id after two such failures in a
// row; the history read after `connected` covers what the replay would have.
//
// Cortex's own `event: error` and the browser's connection errors arrive on the same "error" listener; the
// first is a MessageEvent with data, the second a bare Event.

const EVENT_TYPES = ["connected", "message", "response.started", "response.delta", "response.completed",
  "warning", "error"];
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;
const SERVER_RETRY_MS = 3_000; // the stream's `retry: 3000`
const STABLE_MS = 10_000;
const FAILURES_BEFORE_FORGETTING_ID = 2;
// Stream errors after which reconnecting cannot help: the reader must sign in again or has lost access.
const FINAL = new Set(["token_expired", "unauthorized", "forbidden"]);

export class ConversationStream {
  /**
   * @param {object} options
   * @param {import("./api.js").Api} options.api
   * @param {string} options.conversationId
   * @param {string|null} options.lastEventId where to resume (remembered across reloads), or null for live
   * @param {(type: string, data: object) => void} options.onEvent a conversation event (message, reply, warning)
   * @param {(state: string) => void} options.onState "connected" | "reconnecting" | "offline"
   * @param {() => void} options.onConnected every (re)connection, before any replayed event
   * @param {() => void} options.onReplayLost the server could not replay from our id: reload the history
   * @param {(id: string|null) => void} options.onPosition the id of the last event handled (null: forgotten)
   * @param {(code: string, message: string) => void} options.onEnded the stream ended for good
   */
  constructor(options) {
    Object.assign(this, options);
    this.source = null;
    this.timer = null;
    this.failures = 0;
    this.refusals = 0; // streams in a row that failed before `connected` although their ticket was granted
    this.live = false; // the current source has said `connected`
    this.stable = null; // timer: the current source has stayed up long enough to start the back-off over
    this.attempt = 0; // bumped on every open/close, so a stale async step knows it is stale
    this.finished = false;
    this.wentOnline = () => this.reconnectNow();
    this.wentOffline = () => this.disconnect("offline");
  }

  start() {
    window.addEventListener("online", this.wentOnline);
    window.addEventListener("offline", this.wentOffline);
    this.open();
  }

  stop() {
    this.finished = true;
    window.removeEventListener("online", this.wentOnline);
    window.removeEventListener("offline", this.wentOffline);
    this.close();
  }

  close() {
    this.attempt += 1;
    clearTimeout(this.timer);
    clearTimeout(this.stable);
    this.timer = this.stable = null;
    this.live = false;
    if (this.source) this.source.close();
    this.source = null;
  }

  disconnect(state) {
    this.close();
    this.onState(state);
  }

  reconnectNow() {
    if (this.finished) return;
    this.failures = 0;
    this.close();
    this.open();
  }

  async open() {
    if (this.finished) return;
    if (!navigator.onLine) {
      this.onState("offline");
      return;
    }
    const attempt = ++this.attempt;
    let ticket;
    try {
      ticket = await this.api.streamTicket(this.conversationId);
    } catch (error) {
      if (attempt !== this.attempt || this.finished) return;
      if (error.status === 401 || error.status === 404) {
        this.end(error.code, error.explain());
      } else {
        this.retry(error.retryAfter);
      }
      return;
    }
    if (attempt !== this.attempt || this.finished) return;
    const query = new URLSearchParams({ ticket });
    if (this.lastEventId) query.set("last_event_id", this.lastEventId);
    const source = new EventSource(
      `/v1/conversation/${encodeURIComponent(this.conversationId)}/messages/stream?${query}`);
    this.source = source;
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => this.receive(source, type, event));
    }
  }

  receive(source, type, event) {
    if (source !== this.source) return; // a late event of a source already given up
    if (type === "error" && !(event instanceof MessageEvent)) {
      this.dropped();
      return;
    }
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // not ours to show
    }
    if (type === "connected") {
      this.live = true;
      this.refusals = 0;
      clearTimeout(this.stable);
      this.stable = setTimeout(() => { this.failures = 0; }, STABLE_MS);
      this.onState("connected");
      this.onConnected();
    } else if (type === "error" && !data.response_id) {
      this.streamError(data);
    } else {
      this.onEvent(type, data);
    }
    if (type !== "connected" && this.live) this.failures = 0; // it carried an event: the stream works
    // Recorded only once handled: a reconnect resumes after the last event the page has shown.
    if (event.lastEventId && this.source === source) {
      this.lastEventId = event.lastEventId;
      this.onPosition(event.lastEventId);
    }
  }

  /** The browser lost (or was refused) the current stream. */
  dropped() {
    const wasLive = this.live;
    this.close();
    if (wasLive) {
      this.retry(SERVER_RETRY_MS / 1000);
      return;
    }
    this.refusals += 1;
    if (this.refusals >= FAILURES_BEFORE_FORGETTING_ID && this.lastEventId) {
      this.lastEventId = null;
      this.onPosition(null);
    }
    this.retry(null);
  }

  streamError(data) {
    if (data.code === "replay_window_exceeded") {
      this.onReplayLost();
    } else if (FINAL.has(data.code)) {
      this.end(data.code, data.message);
    }
    // Anything else (stream_unavailable) ends the body: the connection error that follows reconnects.
  }

  retry(retryAfterSeconds) {
    if (this.finished) return;
    if (!navigator.onLine) {
      this.onState("offline");
      return;
    }
    this.onState("reconnecting");
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.failures);
    this.failures += 1;
    const delay = Math.max((retryAfterSeconds ?? 0) * 1000, ceiling / 2 + Math.random() * (ceiling / 2));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  end(code, message) {
    this.stop();
    this.onEnded(code, message);
  }
}

// The transcript of the open conversation: each stored message once (by id), in sequence order, and the
// assistant's replies growing delta by delta until their stored message replaces them.
//
// Every piece of text goes in with textContent or a text node: content is data, never markup, so a message
// holding `<img src=x onerror=...>` or a `[link](javascript:...)` shows as the characters it is.

import { text } from "./dom.js";

const LABELS = { user: "You", assistant: "Assistant", system: "System" };

function clock(iso) {
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? "" : moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class Transcript {
  /**
   * @param {HTMLElement} list the `transcript` element
   * @param {() => string|null} me the signed-in user's id, to tell one's own messages from other people's
   */
  constructor(list, me) {
    this.list = list;
    this.me = me;
    this.atBottom = true;
    list.addEventListener("scroll", () => { this.atBottom = this.nearBottom(); });
    // The list shrinks when the analyses open or the window changes: the newest message stays in view.
    new ResizeObserver(() => { if (this.atBottom) list.scrollTop = list.scrollHeight; }).observe(list);
    this.reset();
  }

  reset() {
    this.list.replaceChildren();
    this.byId = new Map(); // message id -> element
    this.replies = new Map(); // response id -> element of a reply still streaming
    this.finished = new Set(); // response ids whose stored message is shown
    this.lastSequence = 0;
  }

  messageIds() {
    return [...this.byId.keys()];
  }

  /** Show a stored message unless it is already shown; a reply streaming for it becomes it. */
  addMessage(message) {
    const responseId = message.metadata?.response_id;
    if (responseId && message.role === "assistant") this.finished.add(responseId);
    const shown = this.byId.get(message.id);
    if (shown) return shown;
    const streaming = responseId ? this.replies.get(responseId) : undefined;
    const element = streaming ?? this.messageElement(message.role, message.sender_id);
    if (streaming) {
      this.replies.delete(responseId);
      element.removeAttribute("aria-busy");
      delete element.dataset.streaming;
      element.querySelector(".interrupted")?.remove();
    }
    element.dataset.messageId = message.id;
    element.dataset.sequence = String(message.sequence);
    element.querySelector(".body").textContent = message.content;
    element.querySelector("time").textContent = clock(message.created_at);
    element.querySelector("time").dateTime = message.created_at ?? "";
    this.byId.set(message.id, element);
    const newest = message.sequence > this.lastSequence;
    this.lastSequence = Math.max(this.lastSequence, message.sequence);
    this.place(element, message.sequence, newest);
    return element;
  }

  /** A reply has begun (or, after a reconnect, its first delta seen here): an empty assistant message. */
  startReply(responseId) {
    if (this.finished.has(responseId)) return null;
    let element = this.replies.get(responseId);
    if (!element) {
      element = this.messageElement("assistant", null);
      element.dataset.responseId = responseId;
      element.dataset.streaming = "true";
      element.setAttribute("aria-busy", "true");
      this.replies.set(responseId, element);
      this.stick(() => this.list.append(element));
    }
    return element;
  }

  appendDelta(responseId, delta) {
    const element = this.startReply(responseId);
    if (!element) return; // a replayed delta of a reply already shown whole
    element.querySelector(".interrupted")?.remove();
    this.stick(() => element.querySelector(".body").append(document.createTextNode(delta)));
  }

  /** A reply failed: what it had written stays, marked as failed; it is no message of the conversation. */
  failReply(responseId, code, message) {
    const element = this.replies.get(responseId) ?? this.startReply(responseId);
    if (!element) return;
    this.replies.delete(responseId);
    this.finished.add(responseId);
    element.removeAttribute("data-testid");
    element.removeAttribute("aria-busy");
    delete element.dataset.streaming;
    element.classList.add("failed");
    this.stick(() => element.append(text("p", "problem", `The reply failed: ${message} (${code})`)));
  }

  /** Replies that were streaming when the stream was lost and that the history does not hold (yet). */
  markInterrupted() {
    for (const element of this.replies.values()) {
      if (!element.querySelector(".interrupted")) {
        element.append(text("p", "interrupted", "The connection was lost while this reply was written."));
      }
    }
  }

  notice(kind, message) {
    const item = text("li", `notice ${kind}`, message);
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    this.stick(() => this.list.append(item));
  }

  messageElement(role, senderId) {
    const item = document.createElement("li");
    item.className = `message ${role}`;
    item.dataset.testid = "message";
    item.dataset.role = role;
    const mine = role === "user" && (senderId === null || senderId === this.me());
    const who = role === "user" && !mine ? "Participant" : LABELS[role] ?? role;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(text("span", "who", who), document.createTextNode(" "), text("time", "", ""));
    item.append(meta, text("div", "body", ""));
    return item;
  }

  /** Put a stored message in sequence order, above any reply still streaming. The usual case, the newest
   * message with no reply streaming, is an append: a long history loads in linear time. */
  place(element, sequence, newest) {
    if (newest && this.replies.size === 0) {
      if (element !== this.list.lastElementChild) this.stick(() => this.list.append(element));
      return;
    }
    const after = [...this.list.children].find((other) => other !== element
      && (other.dataset.streaming === "true" || Number(other.dataset.sequence) > sequence));
    if (element.nextElementSibling === (after ?? null) && element.parentElement === this.list) return;
    this.stick(() => this.list.insertBefore(element, after ?? null));
  }

  /** Make a change, keeping the view at the bottom if it was there (reading older messages is not disturbed). */
  stick(change) {
    const atBottom = this.atBottom || this.nearBottom();
    change();
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  nearBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
  }
}

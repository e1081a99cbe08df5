// The user's conversations and the open one: its history, its live stream, the messages sent to it, its
// topic. The open conversation is kept in the address (#conversation=<id>), so a reload opens it again.

import { newKey } from "./api.js";
import { lastEventId, rememberEventId } from "./session.js";
import { renderConversations } from "./sidebar.js";
import { ConversationStream } from "./stream.js";

const DEFAULT_TOPIC = "New conversation";
const DEFAULT_WORKSPACE = "Home";
const TOPIC_CHARS = 60;
const HASH = "#conversation=";

const CATCH_UP_FIRST_DELAY_MS = 1_000;
const CATCH_UP_MAX_DELAY_MS = 30_000;

/** The conversation id in the address, or null (a malformed address is forgotten). */
export function conversationInAddress() {
  if (!location.hash.startsWith(HASH)) return null;
  try {
    return decodeURIComponent(location.hash.slice(HASH.length)) || null;
  } catch {
    forgetAddress(); // `#conversation=%`: no id to open
    return null;
  }
}

export function forgetAddress() {
  history.replaceState(null, "", location.pathname + location.search);
}

export class Conversations {
  /**
   * @param {object} parts
   * @param {import("./api.js").Api} parts.api
   * @param {import("./transcript.js").Transcript} parts.transcript
   * @param {object} parts.ui the page's elements, by camel-cased id
   * @param {object} parts.page what belongs to the whole page: `describe(error)`, `banner(message)`,
   *   `signedIn()`, `sessionEnded(message)`
   */
  constructor({ api, transcript, ui, page }) {
    Object.assign(this, { api, transcript, ui, page });
    this.workspaces = [];
    this.entries = []; // [{conversation, workspace}], newest first
    this.current = null; // the open one: {id, conversation, stream, synced, named}
    this.draft = null; // {conversationId, content, key}: a message not yet accepted, resent with the same key
    this.sending = false;
    this.generation = 0; // bumped on every reset: an answer to a request made before it is not shown
  }

  /** Forget everything (logging out). */
  reset() {
    this.generation += 1;
    this.close();
    this.workspaces = [];
    this.entries = [];
    this.draft = null;
    this.ui.conversationList.replaceChildren();
  }

  showConnection(state) {
    this.ui.connectionState.textContent = state;
    this.ui.connectionState.dataset.state = state;
  }

  /** With no stream to follow, the state is the browser's; a conversation whose stream ended is offline. */
  idleConnection() {
    if (this.current?.stream) return;
    this.showConnection(navigator.onLine && !this.current?.ended ? "connected" : "offline");
  }

  entry(id) {
    return this.entries.find((entry) => entry.conversation.id === id);
  }

  renderList() {
    renderConversations(this.ui.conversationList, this.entries, this.current?.id ?? null,
      (id) => this.open(id).then(() => this.ui.messageInput.focus()));
  }

  showTopic() {
    const { current, ui } = this;
    ui.topic.textContent = current?.conversation?.topic ?? (current ? "Loading…" : "No conversation open");
    ui.rename.disabled = ui.analyze.disabled = !current?.conversation;
  }

  async refresh() {
    const generation = this.generation;
    const workspaces = await this.api.workspaces();
    const lists = await Promise.all(workspaces.map(async (workspace) =>
      (await this.api.conversations(workspace.id)).map((conversation) => ({ conversation, workspace }))));
    if (generation !== this.generation) return;
    this.workspaces = workspaces;
    this.entries = lists.flat()
      .sort((a, b) => b.conversation.created_at.localeCompare(a.conversation.created_at));
    this.renderList();
  }

  /** The workspace a new conversation goes in: the open one's, else the newest; a first one is made if none. */
  async workspaceForNew() {
    const open = this.current && this.entry(this.current.id);
    if (open) return open.workspace;
    if (this.workspaces.length === 0) return this.api.createWorkspace(DEFAULT_WORKSPACE);
    return this.workspaces[0];
  }

  async create() {
    const generation = this.generation;
    const workspace = await this.workspaceForNew();
    const conversation = await this.api.createConversation(workspace.id, DEFAULT_TOPIC);
    if (generation !== this.generation) return;
    if (!this.workspaces.includes(workspace)) this.workspaces.unshift(workspace);
    this.entries.unshift({ conversation, workspace });
    this.renderList();
    await this.open(conversation.id);
  }

  close() {
    this.current?.stream?.stop();
    clearTimeout(this.current?.catchUpTimer);
    this.current = null;
    this.transcript.reset();
    this.ui.analysis.hidden = true;
    this.ui.analyze.setAttribute("aria-expanded", "false");
    this.ui.renameForm.hidden = true;
    this.ui.topic.hidden = false;
    this.ui.composerError.textContent = "";
    this.showTopic();
    this.idleConnection();
  }

  async open(id) {
    if (this.current?.id === id && !this.current.ended) return; // an ended stream is retried by opening again
    this.close();
    const opened = { id, conversation: this.entry(id)?.conversation ?? null, stream: null, synced: 0 };
    this.current = opened;
    if (conversationInAddress() !== id) location.hash = HASH + encodeURIComponent(id);
    this.showTopic();
    this.renderList();
    this.showConnection("reconnecting");
    try {
      await this.catchUp(opened);
    } catch (error) {
      if (this.current !== opened) return;
      if (error.status === 404) {
        this.close();
        forgetAddress();
        this.page.banner("That conversation does not exist or is not yours.");
        return;
      }
      // Unreachable or unavailable: the stream's reconnection loads the history once it can.
      if (error.status !== 0 && error.status < 500) {
        this.transcript.notice("error", `The history could not be loaded: ${this.page.describe(error)}`);
      }
    }
    if (this.current !== opened) return;
    const mine = () => this.current === opened;
    opened.stream = new ConversationStream({
      api: this.api,
      conversationId: id,
      lastEventId: lastEventId(id),
      onEvent: (type, data) => mine() && this.streamEvent(type, data),
      onState: (state) => mine() && this.showConnection(state),
      onConnected: () => this.keepCatchingUp(opened),
      onReplayLost: () => {
        this.transcript.markInterrupted();
        this.keepCatchingUp(opened);
      },
      onPosition: (eventId) => rememberEventId(id, eventId),
      onEnded: (code, message) => mine() && this.streamEnded(opened, code, message),
    });
    opened.stream.start();
  }

  /** Add the stored messages after the last history read: what a fresh or replay-less stream cannot resend
   * (and the conversation itself, if it could not be read before). */
  async catchUp(opened) {
    if (!opened.conversation) {
      const conversation = await this.api.conversation(opened.id);
      if (this.current !== opened) return;
      opened.conversation = conversation;
      this.showTopic();
    }
    const messages = await this.api.messages(opened.id, opened.synced);
    if (this.current !== opened) return;
    for (const message of messages) {
      this.transcript.addMessage(message);
      opened.synced = Math.max(opened.synced, message.sequence);
    }
  }

  /** Catch up, retried with a back-off until it succeeds (or the conversation is closed): a failed history read
   * would otherwise leave a gap the stream never fills. */
  keepCatchingUp(opened, delay = CATCH_UP_FIRST_DELAY_MS) {
    clearTimeout(opened.catchUpTimer);
    opened.catchUpTimer = null;
    this.catchUp(opened).catch(() => {
      if (this.current !== opened || !this.page.signedIn()) return;
      const next = Math.min(delay * 2, CATCH_UP_MAX_DELAY_MS);
      opened.catchUpTimer = setTimeout(() => this.keepCatchingUp(opened, next), delay / 2 + Math.random() * (delay / 2));
    });
  }

  streamEvent(type, data) {
    const { transcript } = this;
    if (type === "message") transcript.addMessage(data);
    else if (type === "response.started") transcript.startReply(data.response_id);
    else if (type === "response.delta") transcript.appendDelta(data.response_id, data.delta);
    else if (type === "response.completed") transcript.addMessage(data.message);
    else if (type === "warning") transcript.notice("warning", `Warning: ${data.message} (${data.code})`);
    else if (type === "error") transcript.failReply(data.response_id, data.code, data.message);
  }

  streamEnded(opened, code, message) {
    if (code === "token_expired" || code === "unauthorized") {
      this.page.sessionEnded("Your session has expired. Please log in again.");
      return;
    }
    opened.stream = null;
    opened.ended = true;
    this.idleConnection();
    this.page.banner(`The live updates of this conversation stopped: ${message}`);
  }

  async rename(topic) {
    const opened = this.current;
    const generation = this.generation;
    const conversation = await this.api.renameConversation(opened.id, topic);
    if (generation !== this.generation) return;
    opened.conversation = conversation;
    const entry = this.entry(opened.id);
    if (entry) entry.conversation = conversation;
    if (this.current === opened) this.showTopic();
    this.renderList();
  }

  /** A conversation still under its default topic is named after its first message. */
  nameAfterFirstMessage(opened, content) {
    if (opened.conversation?.topic !== DEFAULT_TOPIC || opened.named) return;
    opened.named = true;
    const line = content.replace(/\s+/g, " ").trim();
    this.rename(line.length > TOPIC_CHARS ? `${line.slice(0, TOPIC_CHARS - 1)}…` : line).catch(() => {});
  }

  /** Send what the message box holds to the open conversation (one is made if none is open). */
  async send() {
    const { ui } = this;
    const content = ui.messageInput.value;
    if (!content.trim() || this.sending) return;
    this.sending = true;
    ui.composerError.textContent = "";
    try {
      if (!this.current) await this.create();
      const opened = this.current;
      if (this.draft?.content !== content || this.draft?.conversationId !== opened.id) {
        this.draft = { conversationId: opened.id, content, key: newKey() };
      }
      const message = await this.api.postMessage(opened.id, content, this.draft.key);
      this.draft = null;
      if (ui.messageInput.value === content) ui.messageInput.value = "";
      if (this.current === opened) this.transcript.addMessage(message);
      this.nameAfterFirstMessage(opened, content);
    } catch (error) {
      if (this.page.signedIn()) ui.composerError.textContent = this.sendProblem(error);
    } finally {
      this.sending = false;
    }
  }

  sendProblem(error) {
    const kept = "Your message is kept: press Enter to send it again.";
    if (error.status === 0) return `Not sent: the server cannot be reached. ${kept}`;
    if (error.status === 429) return `Not sent: ${error.message}. Try again in ${error.retryAfter ?? 1} s.`;
    if (error.status >= 500) return `Not sent: ${error.message}. ${kept}`;
    return `Not sent: ${this.page.describe(error)}`;
  }
}

// The chat page: signing in, the user's conversations, the open conversation's history and live stream,
// search and analyses. docs/WEB.md describes what it does and the data-testid hooks.

import { showAnalyses } from "./analysis.js";
import { Api, newKey } from "./api.js";
import { clearSession, lastEventId, loadSession, rememberEventId, saveSession } from "./session.js";
import { renderConversations, renderSearchResults, showSearching, showSearchProblem } from "./sidebar.js";
import { ConversationStream } from "./stream.js";
import { Transcript } from "./transcript.js";

const DEFAULT_TOPIC = "New conversation";
const DEFAULT_WORKSPACE = "Home";
const TOPIC_CHARS = 60;
const HASH = "#conversation=";

const ui = Object.fromEntries([
  "connection-state", "who", "logout", "banner", "banner-text", "banner-close",
  "auth-view", "auth-form", "email", "password", "login", "register", "auth-error",
  "chat-view", "new-conversation", "conversation-list", "search-form", "search-input", "search-results",
  "topic", "rename", "rename-form", "rename-input", "rename-cancel", "analyze", "analysis",
  "transcript", "composer", "message-input", "send", "composer-error",
].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), document.getElementById(id)]));

let session = null; // {token, user, expiresAt}
let workspaces = [];
let conversations = []; // [{conversation, workspace}], newest first
let current = null; // the open conversation: {id, conversation, stream, synced}
let draft = null; // {conversationId, content, key}: a message not yet accepted, resent with the same key
let sending = false;
let expiry = null;

const api = new Api(() => session?.token ?? null,
  () => endSession("Your session has expired or was refused. Please log in again."));
const transcript = new Transcript(ui.transcript, () => session?.user.id ?? null);

// --- small pieces of the view ---

function showConnection(state) {
  ui.connectionState.textContent = state;
  ui.connectionState.dataset.state = state;
}

function idleConnection() {
  if (!current?.stream) showConnection(navigator.onLine ? "connected" : "offline");
}

function showBanner(message) {
  ui.bannerText.textContent = message;
  ui.banner.hidden = !message;
}

function problem(element, message) {
  element.textContent = message;
}

function describe(error) {
  if (error.status === 0) return "The server cannot be reached. Check your connection and try again.";
  return error.explain?.() ?? String(error);
}

function conversationEntry(id) {
  return conversations.find((entry) => entry.conversation.id === id);
}

function renderList() {
  renderConversations(ui.conversationList, conversations, current?.id ?? null, openFromList);
}

function showTopic() {
  ui.topic.textContent = current?.conversation?.topic ?? (current ? "Loading…" : "No conversation open");
  ui.rename.disabled = ui.analyze.disabled = !current?.conversation;
}

function hashConversation() {
  return location.hash.startsWith(HASH) ? decodeURIComponent(location.hash.slice(HASH.length)) : null;
}

// --- signing in and out ---

function nameFrom(email) {
  return email.split("@")[0].trim().slice(0, 100) || "Me";
}

async function signIn(registering) {
  const email = ui.email.value.trim();
  const password = ui.password.value;
  if (!email || !password) {
    problem(ui.authError, "Enter your e-mail address and a password.");
    return;
  }
  problem(ui.authError, "");
  ui.login.disabled = ui.register.disabled = true;
  try {
    if (registering) await api.register(email, nameFrom(email), password);
    const answer = await api.login(email, password);
    session = { token: answer.access_token, user: answer.user, expiresAt: Date.now() + answer.expires_in * 1000 };
    saveSession(session);
    ui.password.value = "";
    await enterChat();
  } catch (error) {
    const taken = registering && error.code === "conflict";
    problem(ui.authError, taken ? "This e-mail address is already registered: log in instead." : describe(error));
  } finally {
    ui.login.disabled = ui.register.disabled = false;
  }
}

async function enterChat() {
  showBanner("");
  ui.authView.hidden = true;
  ui.chatView.hidden = false;
  ui.logout.hidden = false;
  ui.who.textContent = session.user.email;
  clearTimeout(expiry);
  expiry = setTimeout(() => endSession("Your session has expired. Please log in again."),
    Math.min(session.expiresAt - Date.now(), 2 ** 31 - 1));
  const wanted = hashConversation();
  if (wanted) showConnection("reconnecting"); // not connected until that conversation's stream is
  else idleConnection();
  showTopic();
  try {
    await refreshConversations();
  } catch (error) {
    if (session) showBanner(`Your conversations could not be loaded: ${describe(error)}`);
  }
  if (!session) return;
  if (wanted) {
    await openConversation(wanted);
  }
  (current ? ui.messageInput : ui.newConversation).focus();
}

function endSession(message) {
  closeConversation();
  session = null;
  clearSession();
  clearTimeout(expiry);
  workspaces = [];
  conversations = [];
  draft = null;
  ui.conversationList.replaceChildren();
  ui.searchResults.replaceChildren();
  ui.messageInput.value = "";
  history.replaceState(null, "", location.pathname + location.search);
  ui.chatView.hidden = true;
  ui.logout.hidden = true;
  ui.who.textContent = "";
  ui.authView.hidden = false;
  showBanner(message);
  idleConnection();
  ui.email.focus();
}

// --- conversations ---

async function refreshConversations() {
  workspaces = await api.workspaces();
  const lists = await Promise.all(workspaces.map(async (workspace) =>
    (await api.conversations(workspace.id)).map((conversation) => ({ conversation, workspace }))));
  conversations = lists.flat().sort((a, b) => b.conversation.created_at.localeCompare(a.conversation.created_at));
  renderList();
}

/** The workspace a new conversation goes in: the open one's, else the newest; a first one is made if none. */
async function workspaceForNew() {
  const open = current && conversationEntry(current.id);
  if (open) return open.workspace;
  if (workspaces.length === 0) workspaces = [await api.createWorkspace(DEFAULT_WORKSPACE)];
  return workspaces[0];
}

async function newConversation() {
  const workspace = await workspaceForNew();
  const conversation = await api.createConversation(workspace.id, DEFAULT_TOPIC);
  conversations.unshift({ conversation, workspace });
  renderList();
  await openConversation(conversation.id);
}

function openFromList(id) {
  openConversation(id).then(() => ui.messageInput.focus());
}

function closeConversation() {
  current?.stream?.stop();
  current = null;
  transcript.reset();
  ui.analysis.hidden = true;
  ui.analyze.setAttribute("aria-expanded", "false");
  ui.renameForm.hidden = true;
  ui.topic.hidden = false;
  problem(ui.composerError, "");
  showTopic();
  idleConnection();
}

async function openConversation(id) {
  if (current?.id === id) return;
  closeConversation();
  const opened = { id, conversation: conversationEntry(id)?.conversation ?? null, stream: null, synced: 0 };
  current = opened;
  if (hashConversation() !== id) location.hash = HASH + encodeURIComponent(id);
  showTopic();
  renderList();
  showConnection("reconnecting");
  try {
    await catchUp(opened);
  } catch (error) {
    if (current !== opened) return;
    if (error.status === 404) {
      closeConversation();
      history.replaceState(null, "", location.pathname + location.search);
      showBanner("That conversation does not exist or is not yours.");
      return;
    }
    // Unreachable or unavailable: the stream's reconnection loads the history once it can.
    if (error.status !== 0 && error.status < 500) {
      transcript.notice("error", `The history could not be loaded: ${describe(error)}`);
    }
  }
  if (current !== opened) return;
  opened.stream = new ConversationStream({
    api,
    conversationId: id,
    lastEventId: lastEventId(id),
    onEvent: (type, data) => current === opened && streamEvent(type, data),
    onState: (state) => current === opened && showConnection(state),
    onConnected: () => catchUp(opened).catch(() => {}),
    onReplayLost: () => {
      transcript.markInterrupted();
      catchUp(opened).catch(() => {});
    },
    onPosition: (eventId) => rememberEventId(id, eventId),
    onEnded: (code, message) => streamEnded(opened, code, message),
  });
  opened.stream.start();
}

/** Add the stored messages after the last history read: what a fresh or replay-less stream cannot resend
 * (and the conversation itself, if it could not be read before). */
async function catchUp(opened) {
  if (!opened.conversation) {
    const conversation = await api.conversation(opened.id);
    if (current !== opened) return;
    opened.conversation = conversation;
    showTopic();
  }
  const messages = await api.messages(opened.id, opened.synced);
  if (current !== opened) return;
  for (const message of messages) {
    transcript.addMessage(message);
    opened.synced = Math.max(opened.synced, message.sequence);
  }
}

function streamEvent(type, data) {
  if (type === "message") transcript.addMessage(data);
  else if (type === "response.started") transcript.startReply(data.response_id);
  else if (type === "response.delta") transcript.appendDelta(data.response_id, data.delta);
  else if (type === "response.completed") transcript.addMessage(data.message);
  else if (type === "warning") transcript.notice("warning", `Warning: ${data.message} (${data.code})`);
  else if (type === "error") transcript.failReply(data.response_id, data.code, data.message);
}

function streamEnded(opened, code, message) {
  if (current !== opened) return;
  if (code === "token_expired" || code === "unauthorized") {
    endSession("Your session has expired. Please log in again.");
    return;
  }
  opened.stream = null;
  idleConnection();
  showBanner(`The live updates of this conversation stopped: ${message}`);
}

async function rename(topic) {
  const opened = current;
  const conversation = await api.renameConversation(opened.id, topic);
  opened.conversation = conversation;
  const entry = conversationEntry(opened.id);
  if (entry) entry.conversation = conversation;
  if (current === opened) showTopic();
  renderList();
}

/** A conversation still under its default topic is named after its first message. */
function nameAfterFirstMessage(opened, content) {
  if (opened.conversation?.topic !== DEFAULT_TOPIC || opened.named) return;
  opened.named = true;
  const line = content.replace(/\s+/g, " ").trim();
  rename(line.length > TOPIC_CHARS ? `${line.slice(0, TOPIC_CHARS - 1)}…` : line).catch(() => {});
}

// --- sending ---

function sendProblem(error) {
  const kept = "Your message is kept: press Enter to send it again.";
  if (error.status === 0) return `Not sent: the server cannot be reached. ${kept}`;
  if (error.status === 429) return `Not sent: ${error.message}. Try again in ${error.retryAfter ?? 1} s.`;
  if (error.status >= 500) return `Not sent: ${error.message}. ${kept}`;
  return `Not sent: ${describe(error)}`;
}

async function send() {
  const content = ui.messageInput.value;
  if (!content.trim() || sending) return;
  sending = true;
  problem(ui.composerError, "");
  try {
    if (!current) await newConversation();
    const opened = current;
    if (draft?.content !== content || draft?.conversationId !== opened.id) {
      draft = { conversationId: opened.id, content, key: newKey() };
    }
    const message = await api.postMessage(opened.id, content, draft.key);
    draft = null;
    if (ui.messageInput.value === content) ui.messageInput.value = "";
    if (current === opened) transcript.addMessage(message);
    nameAfterFirstMessage(opened, content);
  } catch (error) {
    if (session) problem(ui.composerError, sendProblem(error));
  } finally {
    sending = false;
  }
}

// --- search and analyses ---

async function search() {
  const query = ui.searchInput.value.trim();
  if (!query) {
    ui.searchResults.replaceChildren();
    return;
  }
  showSearching(ui.searchResults);
  try {
    const answer = await api.search(query);
    renderSearchResults(ui.searchResults, answer.results, session.user.id, openFromList);
  } catch (error) {
    if (session) showSearchProblem(ui.searchResults, describe(error));
  }
}

function toggleAnalyses() {
  const opening = ui.analysis.hidden;
  ui.analysis.hidden = !opening;
  ui.analyze.setAttribute("aria-expanded", String(opening));
  if (!opening || !current) return;
  const id = current.id;
  showAnalyses(api, id, ui.analysis, () => current?.id === id && !ui.analysis.hidden);
}

// --- wiring ---

ui.authForm.addEventListener("submit", (event) => {
  event.preventDefault();
  signIn(false);
});
ui.register.addEventListener("click", () => signIn(true));
ui.logout.addEventListener("click", () => endSession(""));
ui.bannerClose.addEventListener("click", () => showBanner(""));
ui.newConversation.addEventListener("click", async () => {
  ui.newConversation.disabled = true;
  try {
    await newConversation();
    ui.messageInput.focus();
  } catch (error) {
    if (session) showBanner(`A new conversation could not be made: ${describe(error)}`);
  } finally {
    ui.newConversation.disabled = false;
  }
});
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
ui.messageInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
ui.searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
ui.rename.addEventListener("click", () => {
  ui.renameInput.value = current?.conversation?.topic ?? "";
  ui.renameForm.hidden = false;
  ui.topic.hidden = true;
  ui.renameInput.select();
  ui.renameInput.focus();
});
function closeRename() {
  ui.renameForm.hidden = true;
  ui.topic.hidden = false;
  ui.rename.focus();
}
ui.renameForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const topic = ui.renameInput.value.trim();
  if (!topic || !current) return;
  try {
    await rename(topic);
    closeRename();
  } catch (error) {
    if (session) showBanner(`The conversation could not be renamed: ${describe(error)}`);
  }
});
ui.renameCancel.addEventListener("click", closeRename);
ui.renameInput.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeRename();
});
ui.analyze.addEventListener("click", toggleAnalyses);
window.addEventListener("hashchange", () => {
  const id = hashConversation();
  if (session && id && id !== current?.id) openConversation(id);
});
window.addEventListener("online", idleConnection);
window.addEventListener("offline", idleConnection);

session = loadSession();
if (session) {
  enterChat();
} else {
  idleConnection();
}

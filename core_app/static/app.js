// The chat page: signing in and out, and the controls of the signed-in view (conversations, messages,
// search, analyses). docs/WEB.md describes what it does and its data-testid hooks.

import { showAnalyses } from "./analysis.js";
import { Api } from "./api.js";
import { conversationInAddress, Conversations, forgetAddress } from "./conversations.js";
import { clearSession, loadSession, saveSession } from "./session.js";
import { renderSearchResults, showSearching, showSearchProblem } from "./sidebar.js";
import { Transcript } from "./transcript.js";

const ui = Object.fromEntries([
  "connection-state", "who", "logout", "banner", "banner-text", "banner-close",
  "auth-view", "auth-form", "email", "password", "login", "register", "auth-error",
  "chat-view", "new-conversation", "conversation-list", "search-form", "search-input", "search-results",
  "topic", "rename", "rename-form", "rename-input", "rename-cancel", "analyze", "analysis",
  "transcript", "composer", "message-input", "send", "composer-error",
].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), document.getElementById(id)]));

let session = null; // {token, user, expiresAt}
let expiry = null;

function showBanner(message) {
  ui.bannerText.textContent = message;
  ui.banner.hidden = !message;
}

function describe(error) {
  if (error.status === 0) return "The server cannot be reached. Check your connection and try again.";
  return error.explain?.() ?? String(error);
}

const api = new Api(() => session?.token ?? null,
  () => endSession("Your session has expired or was refused. Please log in again."));
const chat = new Conversations({
  api,
  transcript: new Transcript(ui.transcript, () => session?.user.id ?? null),
  ui,
  page: { describe, banner: showBanner, signedIn: () => session !== null, sessionEnded: (m) => endSession(m) },
});

// --- signing in and out ---

function nameFrom(email) {
  return email.split("@")[0].trim().slice(0, 100) || "Me";
}

async function signIn(registering) {
  const email = ui.email.value.trim();
  const password = ui.password.value;
  if (!email || !password) {
    ui.authError.textContent = "Enter your e-mail address and a password.";
    return;
  }
  ui.authError.textContent = "";
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
    ui.authError.textContent = taken ? "This e-mail address is already registered: log in instead." : describe(error);
  } finally {
    ui.login.disabled = ui.register.disabled = false;
  }
}

async function enterChat() {
  const generation = chat.generation;
  showBanner("");
  ui.authView.hidden = true;
  ui.chatView.hidden = false;
  ui.logout.hidden = false;
  ui.who.textContent = session.user.email;
  clearTimeout(expiry);
  expiry = setTimeout(() => endSession("Your session has expired. Please log in again."),
    Math.min(session.expiresAt - Date.now(), 2 ** 31 - 1));
  const wanted = conversationInAddress();
  if (wanted) chat.showConnection("reconnecting"); // not connected until that conversation's stream is
  else chat.idleConnection();
  chat.showTopic();
  try {
    await chat.refresh();
  } catch (error) {
    if (session) showBanner(`Your conversations could not be loaded: ${describe(error)}`);
  }
  if (generation !== chat.generation) return; // logged out meanwhile
  if (wanted) await chat.open(wanted);
  if (generation !== chat.generation) return;
  (chat.current ? ui.messageInput : ui.newConversation).focus();
}

function endSession(message) {
  chat.reset();
  session = null;
  clearSession();
  clearTimeout(expiry);
  ui.searchResults.replaceChildren();
  ui.searchInput.value = "";
  ui.messageInput.value = "";
  ui.renameInput.value = "";
  ui.analysis.replaceChildren();
  forgetAddress();
  ui.chatView.hidden = true;
  ui.logout.hidden = true;
  ui.who.textContent = "";
  ui.authView.hidden = false;
  showBanner(message);
  ui.email.focus();
}

// --- search, analyses, renaming ---

async function search() {
  const query = ui.searchInput.value.trim();
  if (!query) {
    ui.searchResults.replaceChildren();
    return;
  }
  const generation = chat.generation;
  showSearching(ui.searchResults);
  try {
    const answer = await api.search(query);
    if (generation !== chat.generation) return;
    renderSearchResults(ui.searchResults, answer.results, session.user.id,
      (id) => chat.open(id).then(() => ui.messageInput.focus()));
  } catch (error) {
    if (generation === chat.generation) showSearchProblem(ui.searchResults, describe(error));
  }
}

function toggleAnalyses() {
  const opening = ui.analysis.hidden;
  ui.analysis.hidden = !opening;
  ui.analyze.setAttribute("aria-expanded", String(opening));
  if (!opening || !chat.current) return;
  const id = chat.current.id;
  const generation = chat.generation;
  showAnalyses(api, id, ui.analysis,
    () => generation === chat.generation && chat.current?.id === id && !ui.analysis.hidden);
}

function startRename() {
  ui.renameInput.value = chat.current?.conversation?.topic ?? "";
  ui.renameForm.hidden = false;
  ui.topic.hidden = true;
  ui.renameInput.select();
  ui.renameInput.focus();
}

function closeRename() {
  ui.renameForm.hidden = true;
  ui.topic.hidden = false;
  ui.rename.focus();
}

async function rename() {
  const topic = ui.renameInput.value.trim();
  if (!topic || !chat.current) return;
  try {
    await chat.rename(topic);
    closeRename();
  } catch (error) {
    if (session) showBanner(`The conversation could not be renamed: ${describe(error)}`);
  }
}

async function newConversation() {
  ui.newConversation.disabled = true;
  try {
    await chat.create();
    ui.messageInput.focus();
  } catch (error) {
    if (session) showBanner(`A new conversation could not be made: ${describe(error)}`);
  } finally {
    ui.newConversation.disabled = false;
  }
}

// --- wiring ---

function onSubmit(form, action) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    action();
  });
}

onSubmit(ui.authForm, () => signIn(false));
ui.register.addEventListener("click", () => signIn(true));
ui.logout.addEventListener("click", () => endSession(""));
ui.bannerClose.addEventListener("click", () => showBanner(""));
ui.newConversation.addEventListener("click", newConversation);
onSubmit(ui.composer, () => chat.send());
ui.messageInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    chat.send();
  }
});
onSubmit(ui.searchForm, search);
ui.rename.addEventListener("click", startRename);
onSubmit(ui.renameForm, rename);
ui.renameCancel.addEventListener("click", closeRename);
ui.renameInput.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeRename();
});
ui.analyze.addEventListener("click", toggleAnalyses);
window.addEventListener("hashchange", () => {
  const id = conversationInAddress();
  if (session && id && id !== chat.current?.id) chat.open(id);
});
window.addEventListener("online", () => chat.idleConnection());
window.addEventListener("offline", () => chat.idleConnection());

// The sign-in buttons are disabled in the HTML until this script has wired the form: without it, the form
// must not be sent natively (it is method="post" to `/`, which answers 405, and its inputs have no names).
ui.login.disabled = ui.register.disabled = false;

session = loadSession();
if (session) {
  enterChat();
} else {
  chat.idleConnection();
}

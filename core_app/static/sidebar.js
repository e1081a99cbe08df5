// The side column's two lists: the user's conversations (topic and workspace) and the results of a search
// over their history. Text goes in as text only.

import { text } from "./dom.js";

const SNIPPET_CHARS = 160;

function placeholder(list, message) {
  list.replaceChildren(text("li", "empty", message));
}

/**
 * @param {HTMLElement} list the `conversation-list` element
 * @param {{conversation: object, workspace: object}[]} entries newest first
 * @param {string|null} currentId the open conversation
 * @param {(id: string) => void} open
 */
export function renderConversations(list, entries, currentId, open) {
  if (entries.length === 0) {
    placeholder(list, "No conversations yet.");
    return;
  }
  list.replaceChildren(...entries.map(({ conversation, workspace }) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conversation";
    button.dataset.conversationId = conversation.id;
    button.setAttribute("aria-label", `${conversation.topic}, in ${workspace.name}`);
    if (conversation.id === currentId) button.setAttribute("aria-current", "true");
    button.append(text("span", "topic", conversation.topic), text("span", "workspace", workspace.name));
    button.addEventListener("click", () => open(conversation.id));
    item.append(button);
    return item;
  }));
}

export function showSearching(list) {
  placeholder(list, "Searching…");
}

export function showSearchProblem(list, message) {
  placeholder(list, `Search failed: ${message}`);
}

/**
 * @param {HTMLElement} list the `search-results` element
 * @param {object[]} results messages with `score` and the `topic` of their conversation
 * @param {string} me the signed-in user's id
 * @param {(id: string) => void} open
 */
export function renderSearchResults(list, results, me, open) {
  if (results.length === 0) {
    placeholder(list, "Nothing found.");
    return;
  }
  list.replaceChildren(...results.map((result) => {
    const item = document.createElement("li");
    item.className = "result";
    item.dataset.messageId = result.id;
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.conversationId = result.conversation_id;
    const content = result.content.length > SNIPPET_CHARS
      ? `${result.content.slice(0, SNIPPET_CHARS)}…` : result.content;
    const who = result.role === "assistant" ? "Assistant" : result.sender_id === me ? "You" : "Participant";
    const where = `${result.topic ?? "Conversation"} · ${who}`;
    button.append(text("span", "where", where), text("span", "snippet", content));
    button.addEventListener("click", () => open(result.conversation_id));
    item.append(button);
    return item;
  }));
}

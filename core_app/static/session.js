// Where the page keeps what must survive a reload of this tab: the access token and the last stream event id
// seen per conversation. sessionStorage, not localStorage: it lasts as long as the tab, is not shared with
// other tabs, and normally ends with the tab, though a browser may restore it with a reopened tab or session
// (docs/WEB.md, "Where the token lives").

const SESSION = "cortex.session";
const LAST_EVENT = "cortex.last-event.";

function read(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key));
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or refused (a private mode): the page still works, it just forgets on reload.
  }
}

/** The signed-in session {token, user, expiresAt}, or null when there is none or it has expired. */
export function loadSession() {
  const session = read(SESSION);
  if (!session?.token || !session.user || !(session.expiresAt > Date.now())) return null;
  return session;
}

export function saveSession(session) {
  write(SESSION, session);
}

/** Forget the session and every remembered stream position. */
export function clearSession() {
  for (let i = sessionStorage.length - 1; i >= 0; i -= 1) {
    const key = sessionStorage.key(i);
    if (key === SESSION || key.startsWith(LAST_EVENT)) sessionStorage.removeItem(key);
  }
}

export function lastEventId(conversationId) {
  return read(LAST_EVENT + conversationId);
}

/** Remember the last event id seen in a conversation; null forgets it. */
export function rememberEventId(conversationId, id) {
  if (id !== null) {
    write(LAST_EVENT + conversationId, id);
    return;
  }
  try {
    sessionStorage.removeItem(LAST_EVENT + conversationId);
  } catch {
    // Storage refused: nothing was kept either.
  }
}

// The Core API over fetch: same-origin relative URLs, the bearer token in a header (never in a URL), every
// failure turned into one ApiError carrying the server's error code (docs/API.md, "Errors").

export class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfter = null) {
    super(message);
    this.status = status; // 0 when the server could not be reached at all
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter; // seconds, from Retry-After, or null
  }

  /** Words for the user: the first field problem of a validation error, else the server's message. */
  explain() {
    const first = this.details?.errors?.[0];
    if (first?.message) {
      const field = first.field ? `${first.field}: ` : "";
      return field + first.message.replace(/^Value error, /, "");
    }
    return this.message;
  }
}

export class Api {
  /**
   * @param {() => string|null} token the current access token, or null when signed out
   * @param {(error: ApiError) => void} onSessionEnded called when the server refuses the token (401)
   */
  constructor(token, onSessionEnded) {
    this.token = token;
    this.onSessionEnded = onSessionEnded;
  }

  async request(method, path, body = undefined, headers = {}) {
    const token = this.token();
    const init = { method, cache: "no-store", headers: { Accept: "application/json", ...headers } };
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network_error", "The server cannot be reached.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      // A proxy's HTML error page, or an empty body: described by the status below.
    }
    if (!response.ok) {
      const error = data?.error ?? {};
      const retryAfter = Number(response.headers.get("Retry-After")) || null;
      const failure = new ApiError(response.status, error.code ?? `http_${response.status}`,
        error.message ?? `The server answered ${response.status}.`, error.details ?? {}, retryAfter);
      // Only a refusal of the token still in use ends the session: a request started before a logout must
      // not log out whoever signed in since.
      if (response.status === 401 && token && token === this.token()) this.onSessionEnded(failure);
      throw failure;
    }
    return data;
  }

  register(email, name, password) {
    return this.request("POST", "/v1/auth/register", { email, name, password });
  }

  login(email, password) {
    return this.request("POST", "/v1/auth/login", { email, password });
  }

  /** Every item of a paginated list (`?limit=&offset=`, answered with `total`). */
  async all(path, key) {
    const items = [];
    const separator = path.includes("?") ? "&" : "?";
    for (;;) {
      const page = await this.request("GET", `${path}${separator}limit=1000&offset=${items.length}`);
      items.push(...page[key]);
      if (page[key].length === 0 || items.length >= page.total) return items;
    }
  }

  workspaces() {
    return this.all("/v1/workspace", "workspaces");
  }

  async createWorkspace(name) {
    return (await this.request("POST", "/v1/workspace", { name })).workspace;
  }

  conversations(workspaceId) {
    return this.all(`/v1/conversation?workspace_id=${encodeURIComponent(workspaceId)}`, "conversations");
  }

  async conversation(id) {
    return (await this.request("GET", `/v1/conversation/${encodeURIComponent(id)}`)).conversation;
  }

  async createConversation(workspaceId, topic) {
    return (await this.request("POST", "/v1/conversation", { workspace_id: workspaceId, topic })).conversation;
  }

  async renameConversation(id, topic) {
    return (await this.request("PUT", `/v1/conversation/${encodeURIComponent(id)}`, { topic })).conversation;
  }

  /** The conversation's messages after `afterSequence`, every page of them, in order. */
  async messages(id, afterSequence = 0) {
    const messages = [];
    let after = afterSequence;
    for (;;) {
      const page = await this.request("GET",
        `/v1/conversation/${encodeURIComponent(id)}/messages?after_sequence=${after}&limit=1000`);
      messages.push(...page.messages);
      if (!page.has_more) return messages;
      after = page.next_after_sequence;
    }
  }

  async postMessage(id, content, idempotencyKey) {
    return (await this.request("POST", `/v1/conversation/${encodeURIComponent(id)}/messages`, { content },
      { "Idempotency-Key": idempotencyKey })).message;
  }

  async streamTicket(id) {
    return (await this.request("POST", `/v1/conversation/${encodeURIComponent(id)}/stream-ticket`)).ticket;
  }

  search(query) {
    return this.request("POST", "/v1/search", { query, limit: 20 });
  }

  analyze(conversationId, analysisType) {
    return this.request("POST", "/v1/analyze", { conversation_id: conversationId, analysis_type: analysisType });
  }
}

/** A fresh Idempotency-Key (32 hex digits); crypto.getRandomValues works outside secure contexts too. */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

"""The Memory Service's SQLite schema. Created with IF NOT EXISTS: an existing database keeps its data.

Data migrations are plain SQL guarded by a row in `schema_migrations`: the whole script runs at every
start in one transaction (BEGIN IMMEDIATE, so processes starting together run it one after another), and
a migration changes an existing database once. `schema_version` records, in one row, the version of this
file the database was last brought to, as the PostgreSQL backend's does.
"""

SCHEMA_VERSION = 2
"""Raise with every change to the schema below."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE, name TEXT NOT NULL,
    password_hash TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', metadata_json TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS workspaces_owner ON workspaces(owner_id, created_at);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    topic TEXT NOT NULL, participant_ids_json TEXT NOT NULL DEFAULT '[]',
    metadata_json TEXT NOT NULL DEFAULT '{}', next_sequence INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_workspace ON conversations(workspace_id, updated_at);
CREATE TABLE IF NOT EXISTS conversation_participants (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversation_participants_user ON conversation_participants(user_id);
-- UNIQUE (conversation_id, sequence) is also the index that chronological reads use.
CREATE TABLE IF NOT EXISTS messages (
    seq_global INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL,
    metadata_json TEXT NOT NULL DEFAULT '{}', sequence INTEGER NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (conversation_id, sequence)
);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content, content='messages', content_rowid='seq_global', tokenize='unicode61 remove_diacritics 2'
);
-- Where each word occurs (term, doc, col, offset): search ranks from it over the caller's messages only.
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts_instances USING fts5vocab(messages_fts, 'instance');
-- Foreign-key cascades fire these triggers too, so deleting a workspace also cleans the index.
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.seq_global, new.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.seq_global, old.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.seq_global, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.seq_global, new.content);
END;
-- The same words stemmed (Porter: "painting", "paints" and "painted" are "paint"), for searches that ask
-- for stems (get_context's; a plain search keeps to exact words), with the conversation as a token of its
-- own (`scope`, stems_scope() below), so a search finds one user's matches inside the index, however many
-- messages other users hold. Contentless: the text is in `messages`. Filled for existing messages below.
CREATE VIRTUAL TABLE IF NOT EXISTS messages_stems USING fts5(
    content, scope, content='', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS messages_stems_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_stems(rowid, content, scope) VALUES (new.seq_global, new.content, {scope_new});
END;
CREATE TRIGGER IF NOT EXISTS messages_stems_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_stems(messages_stems, rowid, content, scope)
        VALUES ('delete', old.seq_global, old.content, {scope_old});
END;
CREATE TRIGGER IF NOT EXISTS messages_stems_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_stems(messages_stems, rowid, content, scope)
        VALUES ('delete', old.seq_global, old.content, {scope_old});
    INSERT INTO messages_stems(rowid, content, scope) VALUES (new.seq_global, new.content, {scope_new});
END;
-- WITHOUT ROWID: looked up and inserted by its random key on every mutating call, so one B-tree, not two.
-- subject_id: the message, conversation or workspace the stored result is a copy of (idempotency.py).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY, tool TEXT NOT NULL, fingerprint TEXT NOT NULL, result_json TEXT NOT NULL,
    created_at TEXT NOT NULL, subject_id TEXT
) WITHOUT ROWID;
-- Membership (conversation_participants) comes only from creating the conversation or from an invitation
-- its invitee accepted; until then the invitee cannot read the conversation, nor does it feed their replies.
CREATE TABLE IF NOT EXISTS conversation_invitations (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    invitee_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    inviter_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    UNIQUE (conversation_id, invitee_id)
);
CREATE INDEX IF NOT EXISTS conversation_invitations_invitee ON conversation_invitations(invitee_id, created_at);
-- One row per message whose reply has started (claims.py): the primary key lets exactly one claim win.
CREATE TABLE IF NOT EXISTS reply_claims (
    message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE, claimed_at TEXT NOT NULL
) WITHOUT ROWID;
-- A dense vector per message (store/vectors.py), of the model that made it. seq orders the writes, so a
-- process's cached copy of a conversation's vectors reads only what is newer than it has.
CREATE TABLE IF NOT EXISTS message_vectors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL, model TEXT NOT NULL, vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS message_vectors_conversation ON message_vectors(conversation_id, model, seq);
-- Messages waiting for a vector, queued in the write's own transaction; a claim leases a row until
-- lease_until (seconds since the epoch), and storing the vector removes it.
CREATE TABLE IF NOT EXISTS embedding_queue (
    ticket INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS messages_embedding_insert AFTER INSERT ON messages BEGIN
    INSERT INTO embedding_queue (message_id) VALUES (new.id);
END;
-- Changed content: the old vector goes at once, and the message is queued again under a new ticket.
CREATE TRIGGER IF NOT EXISTS messages_embedding_update AFTER UPDATE OF content ON messages
WHEN new.content IS NOT old.content BEGIN
    DELETE FROM message_vectors WHERE message_id = new.id;
    INSERT OR REPLACE INTO embedding_queue (message_id) VALUES (new.id);
END;
CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL) WITHOUT ROWID;
-- Migration participants-by-consent: before it, the workspace owner could add anyone as a participant, so
-- no existing membership was agreed to. Each becomes a pending invitation from the owner (docs/DECISIONS.md).
INSERT INTO conversation_invitations (id, conversation_id, invitee_id, inviter_id, created_at)
    SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
                 || '-' || substr('89ab', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || '-'
                 || hex(randomblob(6))),
           p.conversation_id, p.user_id, w.owner_id, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
    FROM conversation_participants p JOIN conversations c ON c.id = p.conversation_id
    JOIN workspaces w ON w.id = c.workspace_id
    WHERE p.user_id <> w.owner_id
      AND NOT EXISTS (SELECT 1 FROM schema_migrations WHERE name = 'participants-by-consent');
DELETE FROM conversation_participants
    WHERE NOT EXISTS (SELECT 1 FROM schema_migrations WHERE name = 'participants-by-consent')
      AND user_id <> (SELECT w.owner_id FROM conversations c JOIN workspaces w ON w.id = c.workspace_id
                      WHERE c.id = conversation_participants.conversation_id);
UPDATE conversations
    SET participant_ids_json = (SELECT json_array(owner_id) FROM workspaces WHERE id = conversations.workspace_id)
    WHERE NOT EXISTS (SELECT 1 FROM schema_migrations WHERE name = 'participants-by-consent')
      AND participant_ids_json <> (SELECT json_array(owner_id) FROM workspaces WHERE id = conversations.workspace_id);
-- Migration stemmed-search: index the messages stored before messages_stems existed.
INSERT INTO messages_stems(rowid, content, scope)
    SELECT seq_global, content, {scope_messages} FROM messages
    WHERE NOT EXISTS (SELECT 1 FROM schema_migrations WHERE name = 'stemmed-search');
INSERT OR IGNORE INTO schema_migrations (name, applied_at)
    VALUES ('stemmed-search', strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
INSERT OR IGNORE INTO schema_migrations (name, applied_at)
    VALUES ('participants-by-consent', strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'));
"""

def stems_scope(column: str) -> str:
    """SQL for a conversation id as one token of messages_stems' `scope` column: "z" and the id's letters and
    digits (the tokenizer would split it at its hyphens). `search.scope_token` is the same in Python."""
    return f"'z' || replace(replace({column}, '-', ''), '_', '')"


SCHEMA = SCHEMA.replace("{scope_new}", stems_scope("new.conversation_id")).replace(
    "{scope_old}", stems_scope("old.conversation_id")).replace("{scope_messages}", stems_scope("conversation_id"))

# Databases made before idempotency_keys.subject_id existed get the column before SCHEMA_AFTER_COLUMNS,
# which uses it, runs (db.py does this inside the schema's transaction).
ADDED_COLUMNS = (("idempotency_keys", "subject_id", "TEXT"),)

SCHEMA_AFTER_COLUMNS = (
    "CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys(created_at)",
    "CREATE INDEX IF NOT EXISTS idempotency_keys_subject ON idempotency_keys(subject_id)",
    # Deleting an object deletes the replayable copies of it; cascades fire these too.
    "CREATE TABLE IF NOT EXISTS schema_version (singleton INTEGER PRIMARY KEY CHECK (singleton = 1),"
    " version INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    "INSERT INTO schema_version (singleton, version, updated_at)"
    f" VALUES (1, {SCHEMA_VERSION}, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))"
    " ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at"
    " WHERE version < excluded.version",
    *(f"CREATE TRIGGER IF NOT EXISTS {table}_idempotency_delete AFTER DELETE ON {table} BEGIN"
      " DELETE FROM idempotency_keys WHERE subject_id = old.id; END"
      for table in ("messages", "conversations", "workspaces")),
)

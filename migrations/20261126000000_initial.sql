-- Hanzo Live: the initial schema.
--
-- Every table is STRICT; timestamps are UTC ISO-8601 text with milliseconds
-- ('2026-11-26T19:30:00.123Z'), which sorts chronologically as text; every row that belongs
-- to a user is deleted with that user (ON DELETE CASCADE). JSON columns hold documents the
-- server validates before writing. Never edit this file once applied: add a new migration.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    -- Compared case-insensitively, so 'Alice' and 'alice' are one account.
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- argon2id PHC string.
    password_hash TEXT    NOT NULL,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- Login sessions behind the session cookie. The cookie carries a random token; only its
-- hash is stored, so a copy of the database cannot be replayed as a login.
CREATE TABLE auth_sessions (
    token_hash   TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at   TEXT    NOT NULL,
    last_seen_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    user_agent   TEXT,
    ip           TEXT,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

-- Named prompt + settings presets, per user.
CREATE TABLE presets (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    pipeline_id TEXT    NOT NULL,
    -- JSON array of {"text": …, "weight": …}.
    prompts     TEXT    NOT NULL DEFAULT '[]',
    -- JSON object: load and runtime parameters.
    params      TEXT    NOT NULL DEFAULT '{}',
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (user_id, name)
) STRICT;

-- Stream history: one row per stream a signed-in user ran.
CREATE TABLE sessions (
    -- The stream's session id (also the WebRTC session id).
    id              TEXT    PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pipeline_id     TEXT    NOT NULL,
    load_params     TEXT    NOT NULL DEFAULT '{}',
    -- JSON array of {"at": timestamp, "prompts": [...], "params": {...}}: what changed when.
    prompt_log      TEXT    NOT NULL DEFAULT '[]',
    started_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- NULL while the stream runs; an unclosed row is closed at the next start.
    ended_at        TEXT,
    frames_out      INTEGER NOT NULL DEFAULT 0,
    mean_fps        REAL,
    mean_latency_ms REAL,
    error           TEXT,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX sessions_user_started ON sessions (user_id, started_at DESC);

-- Recordings of the output stream; the file lives under <data-dir>/recordings/.
CREATE TABLE recordings (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The stream it was recorded from, if it is still in the history.
    session_id   TEXT    REFERENCES sessions (id) ON DELETE SET NULL,
    title        TEXT    NOT NULL,
    -- File name inside the recordings directory (server-chosen, never user input).
    file_name    TEXT    NOT NULL UNIQUE,
    content_type TEXT    NOT NULL,
    size_bytes   INTEGER NOT NULL CHECK (size_bytes >= 0),
    duration_ms  INTEGER CHECK (duration_ms >= 0),
    width        INTEGER,
    height       INTEGER,
    pipeline_id  TEXT,
    prompts      TEXT    NOT NULL DEFAULT '[]',
    params       TEXT    NOT NULL DEFAULT '{}',
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX recordings_user_created ON recordings (user_id, created_at DESC);

-- Keep updated_at current on every update that does not set it itself.
CREATE TRIGGER users_touch AFTER UPDATE ON users
WHEN NEW.updated_at = OLD.updated_at BEGIN
    UPDATE users SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
CREATE TRIGGER auth_sessions_touch AFTER UPDATE ON auth_sessions
WHEN NEW.updated_at = OLD.updated_at BEGIN
    UPDATE auth_sessions SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE token_hash = NEW.token_hash;
END;
CREATE TRIGGER presets_touch AFTER UPDATE ON presets
WHEN NEW.updated_at = OLD.updated_at BEGIN
    UPDATE presets SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
CREATE TRIGGER sessions_touch AFTER UPDATE ON sessions
WHEN NEW.updated_at = OLD.updated_at BEGIN
    UPDATE sessions SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
CREATE TRIGGER recordings_touch AFTER UPDATE ON recordings
WHEN NEW.updated_at = OLD.updated_at BEGIN
    UPDATE recordings SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;

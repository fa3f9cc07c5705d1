-- Sign-in: Spotify tokens (encrypted at rest), server-side sessions, pending OAuth states.

-- One Spotify connection per user. Tokens are AES-256-GCM ciphertexts (nonce || ciphertext)
-- under the key named by key_id, so keys can rotate: old rows decrypt with their key and
-- are re-encrypted under the current key on their next write.
CREATE TABLE spotify_tokens (
    user_id          BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_id           TEXT NOT NULL,
    access_token     BYTEA NOT NULL,
    refresh_token    BYTEA NOT NULL,
    scope            TEXT NOT NULL DEFAULT '',
    expires_at       TIMESTAMPTZ NOT NULL,
    -- Spotify said invalid_grant (revoked, or the 6-month expiry): the user must sign in again.
    needs_relogin    BOOLEAN NOT NULL DEFAULT false,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Sessions: the cookie holds a random token; only its SHA-256 is stored, so a copy of
-- this table cannot be replayed as a cookie.
CREATE TABLE sessions (
    token_hash   BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- A sign-in in progress: the OAuth `state` (hashed) and its PKCE verifier (encrypted).
-- Single use (deleted when the callback consumes it), valid for minutes.
CREATE TABLE oauth_states (
    state_hash   BYTEA PRIMARY KEY CHECK (length(state_hash) = 32),
    key_id       TEXT NOT NULL,
    verifier     BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);

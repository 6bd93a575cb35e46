//! Accounts: users, recovery codes, sessions, sign-in failures, API keys and the audit log.
//!
//! Plain rows and the SQL that reads and writes them; the rules (hashing, expiry, throttling,
//! who may do what) live in `crate::accounts`. Times are Unix seconds, UTC. Secrets arrive
//! here already hashed: this module never sees a password, a session id or an API key.

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use serde::Serialize;

use super::{Store, StoreError};

/// What a user or an API key may do: an admin everything, a viewer only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// The name as stored, and as the CLI and the API take it.
    pub fn from_name(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

fn role_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Role> {
    let text: String = row.get(index)?;
    Role::from_name(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown role {text:?}").into(),
        )
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    /// Lower-case.
    pub email: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    /// Set for generated one-time passwords: the user must choose a new one first.
    pub password_change_required: bool,
    /// Base32; pending until `totp_enabled_at` is set.
    pub totp_secret: Option<String>,
    pub totp_enabled_at: Option<i64>,
    /// The last TOTP time step accepted (replay protection).
    pub totp_last_step: Option<i64>,
    pub created_at: i64,
    pub last_sign_in_at: Option<i64>,
}

const USER_COLUMNS: &str = "u.id, u.email, u.password_hash, u.role, u.password_change_required,
    open_text(u.totp_secret), u.totp_enabled_at, u.totp_last_step, u.created_at, u.last_sign_in_at";

fn user_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(first)?,
        email: row.get(first + 1)?,
        password_hash: row.get(first + 2)?,
        role: role_column(row, first + 3)?,
        password_change_required: row.get(first + 4)?,
        totp_secret: row.get(first + 5)?,
        totp_enabled_at: row.get(first + 6)?,
        totp_last_step: row.get(first + 7)?,
        created_at: row.get(first + 8)?,
        last_sign_in_at: row.get(first + 9)?,
    })
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub password_change_required: bool,
    pub created_at: i64,
}

/// What `delete_user` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDeletion {
    Deleted,
    NotFound,
    /// Refused: the user is the only admin.
    LastAdmin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Changed,
    NotFound,
    /// Refused: the user is the only admin and would no longer be one.
    LastAdmin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 (hex) of the session id the browser holds.
    pub id_hash: String,
    pub user_id: i64,
    /// Password accepted, TOTP or recovery code still to come.
    pub second_factor_pending: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: String,
    pub user_agent: Option<String>,
}

const SESSION_COLUMNS: &str = "s.id_hash, s.user_id, s.second_factor_pending, s.created_at, s.last_seen_at, s.ip, s.user_agent";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id_hash: row.get(0)?,
        user_id: row.get(1)?,
        second_factor_pending: row.get(2)?,
        created_at: row.get(3)?,
        last_seen_at: row.get(4)?,
        ip: row.get(5)?,
        user_agent: row.get(6)?,
    })
}

/// Sessions to delete: idle since before `idle_before`, created before `created_before`,
/// or still waiting for a second factor since before `pending_before`.
#[derive(Debug, Clone, Copy)]
pub struct SessionCutoffs {
    pub idle_before: i64,
    pub created_before: i64,
    pub pending_before: i64,
}

/// Failure times within a window, newest first (`Store::recent_signin_failures`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentFailures {
    /// The account from this address.
    pub pair: Vec<i64>,
    /// This address, for any account.
    pub address: Vec<i64>,
    /// The account, from any address.
    pub account: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to recognise it; not a secret.
    pub prefix: String,
    pub role: Role,
    pub created_at: i64,
    pub created_by: String,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const API_KEY_COLUMNS: &str =
    "id, name, prefix, role, created_at, created_by, last_used_at, revoked_at";

fn api_key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        role: role_column(row, 3)?,
        created_at: row.get(4)?,
        created_by: row.get(5)?,
        last_used_at: row.get(6)?,
        revoked_at: row.get(7)?,
    })
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    /// SHA-256 (hex) of the key.
    pub key_hash: String,
    pub prefix: String,
    pub role: Role,
    pub created_at: i64,
    pub created_by: String,
}

/// One audit log entry: who did what to whom, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at: i64,
    /// A user's email, `api key NAME`, `cli`, `dev` or `anonymous`.
    pub actor: String,
    /// `signin`, `signin_failed`, `user_created`, … (`accounts::AuditAction`).
    pub action: String,
    /// The account or key concerned, when it is not the actor.
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

fn user_by_id(connection: &Connection, id: i64) -> rusqlite::Result<Option<UserRow>> {
    connection
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"),
            [id],
            |row| user_from_row(row, 0),
        )
        .optional()
}

impl Store {
    /// Adds a user; `None` if the email is taken.
    pub async fn insert_user(&self, user: NewUser) -> Result<Option<UserRow>, StoreError> {
        self.write(move |connection| {
            let inserted = connection.execute(
                "INSERT INTO users (email, password_hash, role, password_change_required, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    user.email,
                    user.password_hash,
                    user.role.as_str(),
                    user.password_change_required,
                    user.created_at
                ],
            );
            match inserted {
                Ok(_) => user_by_id(connection, connection.last_insert_rowid()),
                Err(error) if is_unique_violation(&error) => Ok(None),
                Err(error) => Err(error),
            }
        })
        .await
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        self.read(move |connection| user_by_id(connection, id))
            .await
    }

    /// Case-insensitive.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let email = email.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.email = ?1"),
                    [email],
                    |row| user_from_row(row, 0),
                )
                .optional()
        })
        .await
    }

    /// Every user, by email.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users u ORDER BY u.email"
            ))?;
            let rows = statement.query_map([], |row| user_from_row(row, 0))?;
            rows.collect()
        })
        .await
    }

    /// Deletes a user with their sessions and recovery codes, unless they are the last admin.
    pub async fn delete_user(&self, email: &str) -> Result<UserDeletion, StoreError> {
        let email = email.to_string();
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let role: Option<String> = tx
                .query_row("SELECT role FROM users WHERE email = ?1", [&email], |row| {
                    row.get(0)
                })
                .optional()?;
            let outcome = match role.as_deref() {
                None => UserDeletion::NotFound,
                Some("admin") => {
                    let admins: i64 = tx.query_row(
                        "SELECT COUNT(*) FROM users WHERE role = 'admin'",
                        [],
                        |row| row.get(0),
                    )?;
                    if admins <= 1 {
                        UserDeletion::LastAdmin
                    } else {
                        tx.execute("DELETE FROM users WHERE email = ?1", [&email])?;
                        UserDeletion::Deleted
                    }
                }
                Some(_) => {
                    tx.execute("DELETE FROM users WHERE email = ?1", [&email])?;
                    UserDeletion::Deleted
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    /// Gives a user another role; refuses to take the role of the only admin.
    pub async fn set_role(&self, email: &str, role: Role) -> Result<RoleChange, StoreError> {
        let email = email.to_string();
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let current: Option<String> = tx
                .query_row("SELECT role FROM users WHERE email = ?1", [&email], |row| {
                    row.get(0)
                })
                .optional()?;
            let outcome = match current.as_deref() {
                None => RoleChange::NotFound,
                Some("admin") if role != Role::Admin => {
                    let admins: i64 = tx.query_row(
                        "SELECT COUNT(*) FROM users WHERE role = 'admin'",
                        [],
                        |row| row.get(0),
                    )?;
                    if admins <= 1 {
                        RoleChange::LastAdmin
                    } else {
                        tx.execute(
                            "UPDATE users SET role = ?1 WHERE email = ?2",
                            [role.as_str(), &email],
                        )?;
                        RoleChange::Changed
                    }
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE users SET role = ?1 WHERE email = ?2",
                        [role.as_str(), &email],
                    )?;
                    RoleChange::Changed
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    /// A new password hash; `change_required` for generated one-time passwords.
    pub async fn set_password(
        &self,
        user_id: i64,
        password_hash: String,
        change_required: bool,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE users SET password_hash = ?2, password_change_required = ?3 WHERE id = ?1",
            (user_id, password_hash, change_required),
        )
        .await
        .map(drop)
    }

    pub async fn set_last_sign_in(&self, user_id: i64, at: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE users SET last_sign_in_at = ?2 WHERE id = ?1",
            (user_id, at),
        )
        .await
        .map(drop)
    }

    /// Stores a TOTP secret awaiting confirmation; refused (`false`) once TOTP is enabled.
    pub async fn set_pending_totp_secret(
        &self,
        user_id: i64,
        secret: String,
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = connection.execute(
                "UPDATE users SET totp_secret = seal(?2), totp_last_step = NULL
                 WHERE id = ?1 AND totp_enabled_at IS NULL",
                params![user_id, secret],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    /// Enables the pending TOTP secret, marks `step` used and replaces the recovery codes,
    /// in one transaction. `false` if TOTP was enabled meanwhile or the secret changed.
    pub async fn enable_totp(
        &self,
        user_id: i64,
        secret: String,
        step: i64,
        at: i64,
        recovery_code_hashes: Vec<String>,
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            let changed = tx.execute(
                "UPDATE users SET totp_enabled_at = ?3, totp_last_step = ?4
                 WHERE id = ?1 AND open_text(totp_secret) = ?2 AND totp_enabled_at IS NULL",
                params![user_id, secret, at, step],
            )?;
            if changed != 1 {
                return Ok(false);
            }
            replace_recovery_codes(&tx, user_id, &recovery_code_hashes)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// Turns TOTP off and deletes the recovery codes (`postern user reset-totp`).
    pub async fn disable_totp(&self, user_id: i64) -> Result<(), StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            tx.execute(
                "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL
                 WHERE id = ?1",
                [user_id],
            )?;
            tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
            tx.commit()
        })
        .await
    }

    /// Records `step` as used if it is later than the last one used: `true` if it was.
    /// One statement, so two requests racing with the same code cannot both win.
    pub async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let changed = connection.execute(
                "UPDATE users SET totp_last_step = ?2
                 WHERE id = ?1 AND totp_enabled_at IS NOT NULL
                   AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![user_id, step],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    pub async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: Vec<String>,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            replace_recovery_codes(&tx, user_id, &code_hashes)?;
            tx.commit()
        })
        .await
    }

    /// Deletes the recovery code if the user has it: `true` if it did (single use).
    pub async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: String,
    ) -> Result<bool, StoreError> {
        self.write(move |connection| {
            let deleted = connection.execute(
                "DELETE FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2",
                params![user_id, code_hash],
            )?;
            Ok(deleted == 1)
        })
        .await
    }

    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<u32, StoreError> {
        self.read(move |connection| {
            connection.query_row(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1",
                [user_id],
                |row| row.get(0),
            )
        })
        .await
    }

    pub async fn insert_session(&self, session: SessionRow) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO sessions (id_hash, user_id, second_factor_pending, created_at,
                    last_seen_at, ip, user_agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            (
                session.id_hash,
                session.user_id,
                session.second_factor_pending,
                session.created_at,
                session.last_seen_at,
                session.ip,
                session.user_agent,
            ),
        )
        .await
        .map(drop)
    }

    /// A session and its user, expired or not (the caller decides).
    pub async fn session(
        &self,
        id_hash: &str,
    ) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
        let id_hash = id_hash.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {SESSION_COLUMNS}, {USER_COLUMNS}
                         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?1"
                    ),
                    [id_hash],
                    |row| Ok((session_from_row(row)?, user_from_row(row, 7)?)),
                )
                .optional()
        })
        .await
    }

    /// A user's sessions, newest first.
    pub async fn sessions_of_user(&self, user_id: i64) -> Result<Vec<SessionRow>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = ?1
                 ORDER BY s.created_at DESC"
            ))?;
            let rows = statement.query_map([user_id], session_from_row)?;
            rows.collect()
        })
        .await
    }

    pub async fn touch_session(&self, id_hash: &str, at: i64) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.execute(
            "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1",
            (id_hash, at),
        )
        .await
        .map(drop)
    }

    /// `true` if there was such a session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let id_hash = id_hash.to_string();
        self.write(move |connection| {
            Ok(connection.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])? == 1)
        })
        .await
    }

    /// Deletes every session of a user but `keep` (if given); returns how many.
    pub async fn delete_sessions_of_user(
        &self,
        user_id: i64,
        keep: Option<String>,
    ) -> Result<usize, StoreError> {
        self.write(move |connection| {
            connection.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND id_hash IS NOT ?2",
                params![user_id, keep],
            )
        })
        .await
    }

    pub async fn delete_expired_sessions(
        &self,
        cutoffs: SessionCutoffs,
    ) -> Result<usize, StoreError> {
        self.write(move |connection| {
            connection.execute(
                "DELETE FROM sessions
                 WHERE last_seen_at < ?1 OR created_at < ?2
                    OR (second_factor_pending AND created_at < ?3)",
                params![
                    cutoffs.idle_before,
                    cutoffs.created_before,
                    cutoffs.pending_before
                ],
            )
        })
        .await
    }

    pub async fn record_signin_failure(
        &self,
        at: i64,
        account: String,
        ip: String,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO signin_failures (at, account, ip) VALUES (?1, ?2, ?3)",
            (at, account, ip),
        )
        .await
        .map(drop)
    }

    /// Times of the failures after `since`, newest first, at most `limit` of each: for the
    /// account and address together, for the address, and for the account from anywhere.
    pub async fn recent_signin_failures(
        &self,
        account: String,
        ip: String,
        since: i64,
        limit: u32,
    ) -> Result<RecentFailures, StoreError> {
        self.read(move |connection| {
            let times = |filter: &str, keys: &[&str]| -> rusqlite::Result<Vec<i64>> {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT at FROM signin_failures WHERE {filter} AND at > ?1
                     ORDER BY at DESC LIMIT ?2"
                ))?;
                let mut values: Vec<&dyn rusqlite::ToSql> = vec![&since, &limit];
                values.extend(keys.iter().map(|k| k as &dyn rusqlite::ToSql));
                let rows = statement.query_map(values.as_slice(), |row| row.get(0))?;
                rows.collect()
            };
            Ok(RecentFailures {
                pair: times("account = ?3 AND ip = ?4", &[&account, &ip])?,
                address: times("ip = ?3", &[&ip])?,
                account: times("account = ?3", &[&account])?,
            })
        })
        .await
    }

    /// A successful sign-in from `ip`: its own failures for the account are forgiven (the
    /// address's others and the account's from elsewhere are not), and the address becomes
    /// one the account is known to sign in from.
    pub async fn record_signin_success(
        &self,
        at: i64,
        account: String,
        ip: String,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            connection.execute(
                "DELETE FROM signin_failures WHERE account = ?1 AND ip = ?2",
                params![account, ip],
            )?;
            connection.execute(
                "INSERT INTO signin_known_addresses (account, ip, last_success_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (account, ip) DO UPDATE SET last_success_at = excluded.last_success_at",
                params![account, ip, at],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether the account signed in successfully from `ip` after `since`.
    pub async fn is_known_signin_address(
        &self,
        account: String,
        ip: String,
        since: i64,
    ) -> Result<bool, StoreError> {
        self.read(move |connection| {
            let known = connection
                .prepare_cached(
                    "SELECT 1 FROM signin_known_addresses
                     WHERE account = ?1 AND ip = ?2 AND last_success_at > ?3",
                )?
                .exists(params![account, ip, since])?;
            Ok(known)
        })
        .await
    }

    /// Forgets failures (an operator's unlock): the account's from everywhere, and, with an
    /// address, that address's for every account. Returns how many were forgotten.
    pub async fn clear_signin_failures(
        &self,
        account: String,
        ip: Option<String>,
    ) -> Result<usize, StoreError> {
        self.write(move |connection| {
            let mut cleared =
                connection.execute("DELETE FROM signin_failures WHERE account = ?1", [&account])?;
            if let Some(ip) = ip {
                cleared += connection.execute("DELETE FROM signin_failures WHERE ip = ?1", [ip])?;
            }
            Ok(cleared)
        })
        .await
    }

    /// Drops failures older than `failures_before` and known addresses not used since
    /// `known_before`.
    pub async fn prune_signin_failures(
        &self,
        failures_before: i64,
        known_before: i64,
    ) -> Result<(), StoreError> {
        self.write(move |connection| {
            connection.execute(
                "DELETE FROM signin_failures WHERE at < ?1",
                [failures_before],
            )?;
            connection.execute(
                "DELETE FROM signin_known_addresses WHERE last_success_at < ?1",
                [known_before],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn insert_api_key(&self, key: NewApiKey) -> Result<ApiKeyRow, StoreError> {
        self.write(move |connection| {
            connection.execute(
                "INSERT INTO api_keys (name, key_hash, prefix, role, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key.name,
                    key.key_hash,
                    key.prefix,
                    key.role.as_str(),
                    key.created_at,
                    key.created_by
                ],
            )?;
            connection.query_row(
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                [connection.last_insert_rowid()],
                api_key_from_row,
            )
        })
        .await
    }

    /// The key with this hash, unless revoked.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let key_hash = key_hash.to_string();
        self.read(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {API_KEY_COLUMNS} FROM api_keys
                         WHERE key_hash = ?1 AND revoked_at IS NULL"
                    ),
                    [key_hash],
                    api_key_from_row,
                )
                .optional()
        })
        .await
    }

    pub async fn touch_api_key(&self, id: i64, at: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
            (id, at),
        )
        .await
        .map(drop)
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id"
            ))?;
            let rows = statement.query_map([], api_key_from_row)?;
            rows.collect()
        })
        .await
    }

    /// The key, now revoked; `None` if there is no such key or it was revoked already.
    pub async fn revoke_api_key(&self, id: i64, at: i64) -> Result<Option<ApiKeyRow>, StoreError> {
        self.write(move |connection| {
            let changed = connection.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            connection
                .query_row(
                    &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                    [id],
                    api_key_from_row,
                )
                .optional()
        })
        .await
    }

    pub async fn insert_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(move |connection| insert_audit_row(connection, entry))
            .await
    }

    /// Newest first; `before` is the id of the last row of the previous page.
    pub async fn list_audit(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, at, actor, action, subject, ip, detail FROM audit_log
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![before.unwrap_or(i64::MAX), limit], |row| {
                Ok(AuditRow {
                    id: row.get(0)?,
                    entry: AuditEntry {
                        at: row.get(1)?,
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        subject: row.get(4)?,
                        ip: row.get(5)?,
                        detail: row.get(6)?,
                    },
                })
            })?;
            rows.collect()
        })
        .await
    }
}

fn replace_recovery_codes(
    tx: &rusqlite::Transaction<'_>,
    user_id: i64,
    code_hashes: &[String],
) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    let mut statement =
        tx.prepare_cached("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)")?;
    for hash in code_hashes {
        statement.execute(params![user_id, hash])?;
    }
    Ok(())
}

/// One audit row, on `connection` (inside the caller's transaction when it has one).
pub(super) fn insert_audit_row(connection: &Connection, entry: AuditEntry) -> rusqlite::Result<()> {
    connection
        .execute(
            "INSERT INTO audit_log (at, actor, action, subject, ip, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                entry.at,
                entry.actor,
                entry.action,
                entry.subject,
                entry.ip,
                entry.detail,
            ),
        )
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(email: &str, role: Role) -> NewUser {
        NewUser {
            email: email.into(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            role,
            password_change_required: false,
            created_at: 1_000,
        }
    }

    fn session(id_hash: &str, user_id: i64, created_at: i64, last_seen_at: i64) -> SessionRow {
        SessionRow {
            id_hash: id_hash.into(),
            user_id,
            second_factor_pending: false,
            created_at,
            last_seen_at,
            ip: "127.0.0.1".into(),
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn users_are_unique_by_email_and_the_last_admin_stays() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let admin = store
            .insert_user(new_user("admin@example.com", Role::Admin))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert!(
            store
                .insert_user(new_user("ADMIN@example.com", Role::Viewer))
                .await
                .unwrap()
                .is_none(),
            "emails are unique regardless of case"
        );
        store
            .insert_user(new_user("viewer@example.com", Role::Viewer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.delete_user("admin@example.com").await.unwrap(),
            UserDeletion::LastAdmin
        );
        assert_eq!(
            store.delete_user("viewer@example.com").await.unwrap(),
            UserDeletion::Deleted
        );
        assert_eq!(
            store.delete_user("viewer@example.com").await.unwrap(),
            UserDeletion::NotFound
        );
        assert_eq!(store.list_users().await.unwrap(), vec![admin]);
    }

    #[tokio::test]
    async fn totp_steps_and_recovery_codes_are_single_use() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let user = store
            .insert_user(new_user("a@example.com", Role::Admin))
            .await
            .unwrap()
            .unwrap();
        assert!(
            !store.use_totp_step(user.id, 10).await.unwrap(),
            "not enabled yet"
        );
        assert!(
            store
                .set_pending_totp_secret(user.id, "SECRET".into())
                .await
                .unwrap()
        );
        assert!(
            !store
                .enable_totp(user.id, "OTHER".into(), 10, 2_000, vec![])
                .await
                .unwrap(),
            "only the pending secret can be enabled"
        );
        assert!(
            store
                .enable_totp(
                    user.id,
                    "SECRET".into(),
                    10,
                    2_000,
                    vec!["h1".into(), "h2".into()]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_pending_totp_secret(user.id, "NEW".into())
                .await
                .unwrap(),
            "an enabled secret is not replaced by a pending one"
        );
        assert!(!store.use_totp_step(user.id, 10).await.unwrap());
        assert!(!store.use_totp_step(user.id, 9).await.unwrap());
        assert!(store.use_totp_step(user.id, 11).await.unwrap());
        assert_eq!(store.recovery_codes_left(user.id).await.unwrap(), 2);
        assert!(store.use_recovery_code(user.id, "h1".into()).await.unwrap());
        assert!(!store.use_recovery_code(user.id, "h1".into()).await.unwrap());
        assert_eq!(store.recovery_codes_left(user.id).await.unwrap(), 1);
        store.disable_totp(user.id).await.unwrap();
        let user = store.user(user.id).await.unwrap().unwrap();
        assert_eq!(user.totp_secret, None);
        assert_eq!(store.recovery_codes_left(user.id).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sessions_expire_and_go_with_their_user() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let a = store
            .insert_user(new_user("a@example.com", Role::Admin))
            .await
            .unwrap()
            .unwrap();
        let b = store
            .insert_user(new_user("b@example.com", Role::Admin))
            .await
            .unwrap()
            .unwrap();
        store
            .insert_session(session("s1", a.id, 100, 100))
            .await
            .unwrap();
        store
            .insert_session(session("s2", a.id, 100, 500))
            .await
            .unwrap();
        store
            .insert_session(session("s3", a.id, 400, 500))
            .await
            .unwrap();
        store
            .insert_session(session("s4", b.id, 400, 500))
            .await
            .unwrap();
        let (found, user) = store.session("s2").await.unwrap().unwrap();
        assert_eq!((found.last_seen_at, user.id), (500, a.id));
        // s1 idle, s2 too old.
        let deleted = store
            .delete_expired_sessions(SessionCutoffs {
                idle_before: 200,
                created_before: 300,
                pending_before: 0,
            })
            .await
            .unwrap();
        assert_eq!(deleted, 2);
        assert_eq!(
            store
                .delete_sessions_of_user(a.id, Some("s3".into()))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.delete_sessions_of_user(a.id, None).await.unwrap(), 1);
        assert_eq!(
            store.delete_user("b@example.com").await.unwrap(),
            UserDeletion::Deleted
        );
        assert!(store.session("s4").await.unwrap().is_none(), "cascaded");
    }

    /// A store with sign-in failures: a@example.com from 10.0.0.1 at 10, 20 and 30 and from
    /// 10.0.0.2 at 25; b@example.com from 10.0.0.1 at 40.
    async fn store_with_signin_failures() -> (tempfile::TempDir, Store) {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        for (at, account, ip) in [
            (10, "a@example.com", "10.0.0.1"),
            (20, "a@example.com", "10.0.0.1"),
            (30, "a@example.com", "10.0.0.1"),
            (40, "b@example.com", "10.0.0.1"),
            (25, "a@example.com", "10.0.0.2"),
        ] {
            store
                .record_signin_failure(at, account.into(), ip.into())
                .await
                .unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn signin_failures_are_counted_by_pair_address_and_account() {
        let (_dir, store) = store_with_signin_failures().await;
        let recent = store
            .recent_signin_failures("a@example.com".into(), "10.0.0.1".into(), 19, 10)
            .await
            .unwrap();
        assert_eq!(recent.pair, vec![30, 20]);
        assert_eq!(recent.address, vec![40, 30, 20]);
        assert_eq!(recent.account, vec![30, 25, 20]);
    }

    #[tokio::test]
    async fn a_signin_success_forgives_then_unlock_and_pruning_clear() {
        let (_dir, store) = store_with_signin_failures().await;
        // A success forgives its own address's failures for the account, nothing else.
        store
            .record_signin_success(50, "a@example.com".into(), "10.0.0.1".into())
            .await
            .unwrap();
        let recent = store
            .recent_signin_failures("a@example.com".into(), "10.0.0.1".into(), 0, 10)
            .await
            .unwrap();
        assert_eq!(
            (recent.pair, recent.address, recent.account),
            (vec![], vec![40], vec![25])
        );
        let known = |ip: &str, since| {
            store.is_known_signin_address("a@example.com".into(), ip.into(), since)
        };
        assert!(known("10.0.0.1", 49).await.unwrap());
        assert!(!known("10.0.0.1", 50).await.unwrap());
        assert!(!known("10.0.0.2", 0).await.unwrap());

        // An unlock: the account's failures, and with an address, that address's too.
        let cleared = store
            .clear_signin_failures("a@example.com".into(), Some("10.0.0.1".into()))
            .await
            .unwrap();
        assert_eq!(cleared, 2);
        store.prune_signin_failures(35, 51).await.unwrap();
        assert!(!known("10.0.0.1", 0).await.unwrap(), "pruned");
    }

    #[tokio::test]
    async fn api_keys_are_found_by_hash_until_revoked_once() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        let key = store
            .insert_api_key(NewApiKey {
                name: "ci".into(),
                key_hash: "kh".into(),
                prefix: "pst_abcd".into(),
                role: Role::Viewer,
                created_at: 5,
                created_by: "cli".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            store.api_key_by_hash("kh").await.unwrap(),
            Some(key.clone())
        );
        assert!(store.revoke_api_key(key.id, 6).await.unwrap().is_some());
        assert!(store.revoke_api_key(key.id, 7).await.unwrap().is_none());
        assert_eq!(store.api_key_by_hash("kh").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_audit_log_pages_newest_first() {
        let dir = crate::datadir::test_dir();
        let store = Store::open(dir.path()).unwrap();
        for action in ["signin", "signout"] {
            store
                .insert_audit(AuditEntry {
                    at: 1,
                    actor: "a@example.com".into(),
                    action: action.into(),
                    subject: None,
                    ip: Some("127.0.0.1".into()),
                    detail: None,
                })
                .await
                .unwrap();
        }
        let rows = store.list_audit(None, 1).await.unwrap();
        assert_eq!(rows[0].entry.action, "signout");
        let rows = store.list_audit(Some(rows[0].id), 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].entry.action, "signin");
    }
}

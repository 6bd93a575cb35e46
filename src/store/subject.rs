//! Everything the store holds about one data subject (a person's address, a domain, or a
//! managed inbound address): count it, dump it as JSON rows, or delete it in one
//! transaction (design: issue 11, data-subject requests).
//!
//! The rows of a subject are chosen once per call into two temporary tables (the inbound
//! and outbound message ids); every table's part is a `WHERE` over those or over the
//! address itself, so counting, exporting and purging agree on what is "theirs".

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{AuditEntry, Store, StoreError};

/// Which rows belong to the subject; `value` is lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub value: String,
    /// Unix seconds, inclusive; with `since_text`, the same instant as stored inbound times.
    pub since: Option<(i64, String)>,
    /// Unix seconds, exclusive.
    pub until: Option<(i64, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person: sender, recipient, header From, suppression, audit subject.
    Email,
    /// Every address `@domain`.
    Domain,
    /// A managed inbound address: the mail it received, and the mail sent from it.
    Address,
}

/// What a purge takes beyond messages and their attempts, events and content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeScope {
    pub suppressions: bool,
    /// Outbound messages with recipients still queued, deferred or being sent.
    pub queued: bool,
}

impl PurgeScope {
    /// Everything, queued mail and suppressions included: what an export holds.
    pub const ALL: PurgeScope = PurgeScope {
        suppressions: true,
        queued: true,
    };
}

/// Rows per table, in [`TABLES`] order.
pub type Counts = Vec<(&'static str, u64)>;

/// One table's rows as JSON objects (BLOBs as their length).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDump {
    pub table: &'static str,
    pub rows: Vec<Map<String, Value>>,
}

/// The subject's metadata, and the ids whose content the caller reads through the store's
/// content functions (`get_inbound_raw`, `outbound_content`).
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectDump {
    pub tables: Vec<TableDump>,
    pub inbound_ids: Vec<i64>,
    pub outbound_ids: Vec<i64>,
}

/// Every table that holds the subject: counted and dumped, children before parents.
const TABLES: &[(&str, &str)] = &[
    (
        "delivery_attempts",
        "message_id IN (SELECT id FROM temp.subject_inbound)",
    ),
    (
        "inbound_raw",
        "message_id IN (SELECT id FROM temp.subject_inbound)",
    ),
    (
        "inbound_messages",
        "id IN (SELECT id FROM temp.subject_inbound)",
    ),
    (
        "outbound_attempts",
        "recipient_id IN (SELECT id FROM outbound_recipients
            WHERE message_id IN (SELECT id FROM temp.subject_outbound))",
    ),
    (
        "outbound_events",
        "message_id IN (SELECT id FROM temp.subject_outbound)",
    ),
    (
        "outbound_recipients",
        "message_id IN (SELECT id FROM temp.subject_outbound)",
    ),
    (
        "outbound_content",
        "message_id IN (SELECT id FROM temp.subject_outbound)",
    ),
    (
        "outbound_messages",
        "id IN (SELECT id FROM temp.subject_outbound)",
    ),
    (
        "suppressions",
        "address IN (SELECT address FROM temp.subject_suppressions)",
    ),
    ("audit_log", "id IN (SELECT id FROM temp.subject_audit)"),
];

/// The tables a purge deletes from; the others' rows follow by cascade.
const PURGED: &[&str] = &[
    "inbound_messages",
    "outbound_messages",
    "suppressions",
    "audit_log",
];

/// Tables whose rows are content, exported as `.eml` files rather than JSON.
const CONTENT_TABLES: &[&str] = &["inbound_raw", "outbound_content"];

const ACTIVE: &str = "('queued', 'deferred', 'sending')";

impl Subject {
    /// The SQL that matches one address column `x` (`?1` is the value).
    fn matches(&self, column: &str) -> String {
        match self.kind {
            SubjectKind::Domain => format!("lower({column}) LIKE '%@' || ?1"),
            SubjectKind::Email | SubjectKind::Address => format!("{column} = ?1 COLLATE NOCASE"),
        }
    }

    /// A header value such as `Name <a@b>` or `a@b`.
    fn matches_header(&self, column: &str) -> String {
        let bare = format!("rtrim(substr({column}, instr({column}, '<') + 1), '>')");
        format!("({} OR {})", self.matches(column), self.matches(&bare))
    }

    fn window(&self, inbound: bool) -> String {
        let (since, until) = match inbound {
            true => ("received_at >= ?2", "received_at < ?3"),
            false => ("created_at >= ?4", "created_at < ?5"),
        };
        let mut clause = String::new();
        if self.since.is_some() {
            clause += &format!(" AND {since}");
        }
        if self.until.is_some() {
            clause += &format!(" AND {until}");
        }
        clause
    }

    fn inbound_sql(&self) -> String {
        let own = match self.kind {
            SubjectKind::Address => self.matches("address"),
            _ => format!(
                "({} OR {} OR EXISTS (SELECT 1 FROM json_each(m.recipients) r WHERE {}))",
                self.matches("mail_from"),
                self.matches("address"),
                self.matches("r.value")
            ),
        };
        format!(
            "INSERT INTO temp.subject_inbound SELECT id FROM inbound_messages m WHERE {own}{}",
            self.window(true)
        )
    }

    fn outbound_sql(&self, queued: bool) -> String {
        let from = format!(
            "({} OR {})",
            self.matches_header("header_from"),
            self.matches("envelope_from")
        );
        let own = match self.kind {
            SubjectKind::Address => from,
            _ => format!(
                "({from} OR EXISTS (SELECT 1 FROM outbound_recipients r
                    WHERE r.message_id = m.id AND {}))",
                self.matches("r.address")
            ),
        };
        let active = match queued {
            true => String::new(),
            false => format!(
                " AND NOT EXISTS (SELECT 1 FROM outbound_recipients q
                    WHERE q.message_id = m.id AND q.state IN {ACTIVE})"
            ),
        };
        format!(
            "INSERT INTO temp.subject_outbound SELECT id FROM outbound_messages m
                WHERE {own}{}{active}",
            self.window(false)
        )
    }

    fn suppressions_sql(&self) -> String {
        format!(
            "INSERT INTO temp.subject_suppressions SELECT address FROM suppressions WHERE {}",
            self.matches("address")
        )
    }

    /// Audit rows that name the subject, as a whole address, in their subject or detail:
    /// SQL finds the candidates, [`names`] keeps those where the address stands alone
    /// (`al@x.com` is not in `sal@x.com`, `@x.co` not in `@x.com`).
    fn select_audit(&self, connection: &Connection) -> rusqlite::Result<()> {
        let needle = match self.kind {
            SubjectKind::Domain => format!("@{}", self.value),
            SubjectKind::Email | SubjectKind::Address => self.value.clone(),
        };
        let mut candidates = connection.prepare(
            "SELECT id, text FROM (SELECT id,
                 lower(coalesce(subject, '') || ' ' || coalesce(detail, '')) AS text
                 FROM audit_log) WHERE instr(text, ?1) > 0",
        )?;
        let mut insert = connection.prepare("INSERT INTO temp.subject_audit (id) VALUES (?1)")?;
        let rows = candidates.query_map([&needle], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, text) = row?;
            if names(&text, &needle) {
                insert.execute([id])?;
            }
        }
        Ok(())
    }

    fn params(&self) -> [rusqlite::types::Value; 5] {
        use rusqlite::types::Value as Sql;
        let int = |bound: &Option<(i64, String)>| bound.as_ref().map_or(Sql::Null, |b| b.0.into());
        let text = |bound: &Option<(i64, String)>| {
            bound.as_ref().map_or(Sql::Null, |b| b.1.clone().into())
        };
        [
            self.value.clone().into(),
            text(&self.since),
            text(&self.until),
            int(&self.since),
            int(&self.until),
        ]
    }

    /// Fills the temporary id tables on `connection`.
    fn select(&self, connection: &Connection, scope: PurgeScope) -> rusqlite::Result<()> {
        connection.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS subject_inbound (id INTEGER PRIMARY KEY);
             CREATE TEMP TABLE IF NOT EXISTS subject_outbound (id INTEGER PRIMARY KEY);
             CREATE TEMP TABLE IF NOT EXISTS subject_suppressions (address TEXT PRIMARY KEY);
             CREATE TEMP TABLE IF NOT EXISTS subject_audit (id INTEGER PRIMARY KEY);
             DELETE FROM temp.subject_inbound; DELETE FROM temp.subject_outbound;
             DELETE FROM temp.subject_suppressions; DELETE FROM temp.subject_audit;",
        )?;
        let params = self.params();
        let run = |sql: &str| -> rusqlite::Result<usize> {
            let mut statement = connection.prepare(sql)?;
            let count = statement.parameter_count();
            statement.execute(rusqlite::params_from_iter(params.iter().take(count)))
        };
        run(&self.inbound_sql())?;
        run(&self.outbound_sql(scope.queued))?;
        if scope.suppressions {
            run(&self.suppressions_sql())?;
        }
        self.select_audit(connection)
    }
}

/// Whether `text` holds `needle` (an address, or `@domain`) as a whole address: not inside
/// a longer local part before it, nor a longer domain after it.
fn names(text: &str, needle: &str) -> bool {
    let local = |c: char| c.is_ascii_alphanumeric() || "._%+-'".contains(c);
    let label = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(needle).any(|(at, _)| {
        let starts = needle.starts_with('@') || !text[..at].chars().next_back().is_some_and(local);
        let mut after = text[at + needle.len()..].chars();
        let ends = match after.next() {
            None => true,
            Some('.') => !after.next().is_some_and(label),
            Some(c) => !label(c),
        };
        starts && ends
    })
}

fn count_all(connection: &Connection) -> rusqlite::Result<Counts> {
    TABLES
        .iter()
        .map(|(table, filter)| {
            let sql = format!("SELECT count(*) FROM {table} WHERE {filter}");
            let count: i64 = connection.query_row(&sql, [], |row| row.get(0))?;
            Ok((*table, count as u64))
        })
        .collect()
}

fn dump_table(
    connection: &Connection,
    table: &'static str,
    filter: &str,
) -> rusqlite::Result<TableDump> {
    let mut statement = connection.prepare(&format!("SELECT * FROM {table} WHERE {filter}"))?;
    let names: Vec<String> = statement.column_names().map(str::to_string).collect();
    let rows = statement
        .query_map([], |row| {
            let mut object = Map::new();
            for (index, name) in names.iter().enumerate() {
                object.insert(name.clone(), json_value(row.get_ref(index)?));
            }
            Ok(object)
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(TableDump { table, rows })
}

fn json_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(number) => number.into(),
        ValueRef::Real(number) => number.into(),
        ValueRef::Text(text) => String::from_utf8_lossy(text).into(),
        ValueRef::Blob(blob) => format!("<{} bytes>", blob.len()).into(),
    }
}

fn ids(connection: &Connection, table: &str) -> rusqlite::Result<Vec<i64>> {
    let mut statement = connection.prepare(&format!("SELECT id FROM temp.{table} ORDER BY id"))?;
    let ids = statement.query_map([], |row| row.get(0))?;
    ids.collect()
}

impl Store {
    /// How many rows of each table a purge with `scope` would delete.
    pub async fn count_subject(
        &self,
        subject: Subject,
        scope: PurgeScope,
    ) -> Result<Counts, StoreError> {
        self.read(move |connection| {
            subject.select(connection, scope)?;
            count_all(connection)
        })
        .await
    }

    /// The subject's metadata rows, table by table, and the ids of its messages.
    pub async fn dump_subject(&self, subject: Subject) -> Result<SubjectDump, StoreError> {
        self.read(move |connection| {
            let tx = connection.unchecked_transaction()?;
            subject.select(&tx, PurgeScope::ALL)?;
            let tables = TABLES
                .iter()
                .filter(|(table, _)| !CONTENT_TABLES.contains(table))
                .map(|(table, filter)| dump_table(&tx, table, filter))
                .collect::<rusqlite::Result<_>>()?;
            let dump = SubjectDump {
                tables,
                inbound_ids: ids(&tx, "subject_inbound")?,
                outbound_ids: ids(&tx, "subject_outbound")?,
            };
            tx.commit()?;
            Ok(dump)
        })
        .await
    }

    /// Deletes the subject's rows in one transaction (`secure_delete` is on for every
    /// connection: freed cells are zeroed), adds `audit` in the same transaction, then
    /// rebuilds the file (`VACUUM`: stale copies that earlier page rewrites left in unused
    /// space go too) and checkpoints and truncates the WAL, so no file under the data
    /// directory keeps the deleted bytes. Writers wait while the file is rebuilt (seconds
    /// for a 600 MB store).
    pub async fn purge_subject(
        &self,
        subject: Subject,
        scope: PurgeScope,
        audit: impl FnOnce(&Counts) -> AuditEntry + Send + 'static,
    ) -> Result<Counts, StoreError> {
        self.write(move |connection| {
            let tx = connection.transaction()?;
            subject.select(&tx, scope)?;
            let counts = count_all(&tx)?;
            // Attempts, content, recipients and events go with their message (ON DELETE
            // CASCADE, as in the retention sweep).
            for (table, filter) in TABLES.iter().filter(|(t, _)| PURGED.contains(t)) {
                tx.execute(&format!("DELETE FROM {table} WHERE {filter}"), [])?;
            }
            super::accounts::insert_audit_row(&tx, audit(&counts))?;
            tx.commit()?;
            connection.execute_batch(
                "DELETE FROM temp.subject_inbound; DELETE FROM temp.subject_outbound;
                 DELETE FROM temp.subject_suppressions; DELETE FROM temp.subject_audit;",
            )?;
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            // VACUUM builds the new file in a temporary database: on disk (an unlinked 0600
            // file in $SQLITE_TMPDIR, else /var/tmp or /tmp, holding what remains: sealed
            // content, plain metadata), as in memory it would take as much as the store.
            connection
                .execute_batch("PRAGMA temp_store = FILE; VACUUM; PRAGMA temp_store = MEMORY;")?;
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(counts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn an_address_is_named_only_as_a_whole() {
        assert!(names("suppressed al@x.com", "al@x.com"));
        assert!(names("removed al@x.com. done", "al@x.com"));
        assert!(names("<al@x.com>", "al@x.com"));
        assert!(!names("suppressed sal@x.com", "al@x.com"));
        assert!(!names("suppressed al@x.com.au", "al@x.com"));
        assert!(!names("al@x.community", "al@x.com"));
        assert!(names("a@x.co b@y.org", "@x.co"));
        assert!(!names("a@x.com", "@x.co"));
        assert!(!names("a@x.co-op.org", "@x.co"));
    }
}

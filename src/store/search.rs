//! The inbox's search language, parsed without I/O, and the SQL it becomes over
//! `inbound_messages m` and the FTS5 indexes of migration 11.
//!
//! A query is words and operators, all of which must hold:
//! - `word`, `"two words"`: in the subject, the header From/To/Cc, the envelope sender or
//!   recipients, or the plain body (where it is indexed: content kept, store not sealed);
//! - `from:` (header From or envelope sender), `to:` (header To/Cc or envelope recipients),
//!   `subject:`: the text inside that field, any part of it (`from:alice`, `to:example.org`);
//! - `status:rejected` (an outcome), `is:unread`/`is:read` (for whoever searches),
//!   `has:attachment`, `after:2026-11-28`/`before:2026-11-29` (received at or after, before;
//!   dates are UTC days, or RFC 3339 times);
//! - `-` before any of them negates it (`-from:noreply`).
//!
//! Text matches ignore case. Texts of 3 characters or more use the trigram indexes; shorter
//! ones scan the row's columns (`LIKE`), which is slower but still right. An operator this
//! language does not know (`re:`, `http://…`) is searched for as text.

use rusqlite::types::Value as SqlValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::messages::Outcome;

/// A parsed query: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub terms: Vec<Term>,
}

/// One condition, and whether it is negated (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// In any indexed field, or the body.
    Text(String),
    From(String),
    To(String),
    Subject(String),
    Status(Outcome),
    /// Read by whoever searches (`is:read`); `is:unread` is its negation.
    Read,
    HasAttachment,
    /// Received at or after (the stored time's form, or a `YYYY-MM-DD` prefix).
    After(String),
    /// Received before.
    Before(String),
}

/// Why a query could not be read: shown as it is, next to the search box.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("{0}: needs a value (e.g. {0}:alice)")]
    Empty(&'static str),
    #[error(
        "status: must be successful, rejected, delayed, captured, bounce, refused, queued, failed or discarded, not {0:?}"
    )]
    Status(String),
    #[error("is: must be read or unread, not {0:?}")]
    Is(String),
    #[error("has: must be attachment, not {0:?}")]
    Has(String),
    #[error(
        "{0}: must be a date (2026-11-28) or an RFC 3339 time (2026-11-28T09:00:00Z), not {1:?}"
    )]
    Date(&'static str, String),
    #[error("a quote is not closed")]
    Unclosed,
    #[error("the search is too long (at most {MAX_TERMS} terms)")]
    TooLong,
}

/// More than this many terms is refused (each is a subquery).
pub const MAX_TERMS: usize = 16;

impl Search {
    /// Reads a query typed into the search box or passed as `q=`.
    pub fn parse(query: &str) -> Result<Search, SearchError> {
        let mut terms = Vec::new();
        for word in split(query)? {
            if terms.len() == MAX_TERMS {
                return Err(SearchError::TooLong);
            }
            terms.push(term(word)?);
        }
        Ok(Search { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the query says `status:` (then refusals are not left out by default).
    pub fn names_status(&self) -> bool {
        self.terms
            .iter()
            .any(|t| matches!(t.condition, Condition::Status(_)))
    }
}

/// A raw word: its text with quotes removed, and whether any part was quoted (a quoted
/// `"a:b"` is text, not an operator).
struct Word {
    text: String,
    operator_end: Option<usize>,
}

/// Splits on whitespace outside double quotes and on control characters anywhere;
/// `key:"a b"` and `"a b"` are one word.
fn split(query: &str) -> Result<Vec<Word>, SearchError> {
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut quoted = false;
    for c in query.chars() {
        match c {
            '"' => {
                let word = current.get_or_insert_with(|| Word {
                    text: String::new(),
                    operator_end: None,
                });
                if !quoted && word.operator_end.is_none() {
                    // What came before the first quote may be an operator (`subject:"…"`).
                    word.operator_end = Some(word.text.len());
                }
                quoted = !quoted;
            }
            // Control characters (NUL ends an FTS5 string early) separate like spaces.
            c if (c.is_whitespace() && !quoted) || c.is_control() => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            c => current
                .get_or_insert_with(|| Word {
                    text: String::new(),
                    operator_end: None,
                })
                .text
                .push(c),
        }
    }
    if quoted {
        return Err(SearchError::Unclosed);
    }
    words.extend(current);
    Ok(words)
}

fn term(word: Word) -> Result<Term, SearchError> {
    let (negated, text, operator_end) = match word.text.strip_prefix('-') {
        Some(rest) if !rest.is_empty() => (true, rest, word.operator_end.map(|end| end - 1)),
        _ => (false, word.text.as_str(), word.operator_end),
    };
    // The operator is the text before the first ':', unless a quote came first.
    let split = text
        .find(':')
        .filter(|colon| operator_end.is_none_or(|end| *colon < end));
    let parsed = match split {
        Some(colon) => operator(&text[..colon], &text[colon + 1..])?,
        None => None,
    };
    Ok(match parsed {
        // `is:unread` is `-is:read` (and `-is:unread` is `is:read`).
        Some((condition, flip)) => Term {
            negated: negated != flip,
            condition,
        },
        None => Term {
            negated,
            condition: Condition::Text(text.to_string()),
        },
    })
}

/// The condition of `key:value` and whether it reads negated (`is:unread`); `None` when
/// `key` is no operator (then the word is text).
fn operator(key: &str, value: &str) -> Result<Option<(Condition, bool)>, SearchError> {
    let name: &'static str = match key.to_ascii_lowercase().as_str() {
        "from" => "from",
        "to" => "to",
        "subject" => "subject",
        "status" => "status",
        "is" => "is",
        "has" => "has",
        "after" | "since" => "after",
        "before" | "until" => "before",
        _ => return Ok(None),
    };
    if value.is_empty() {
        return Err(SearchError::Empty(name));
    }
    let lower = value.to_ascii_lowercase();
    let condition = match name {
        "from" => Condition::From(value.to_string()),
        "to" => Condition::To(value.to_string()),
        "subject" => Condition::Subject(value.to_string()),
        "status" => {
            Condition::Status(Outcome::from_name(&lower).ok_or(SearchError::Status(lower))?)
        }
        "is" => match lower.as_str() {
            "read" => Condition::Read,
            "unread" => return Ok(Some((Condition::Read, true))),
            _ => return Err(SearchError::Is(lower)),
        },
        "has" => match lower.as_str() {
            "attachment" | "attachments" => Condition::HasAttachment,
            _ => return Err(SearchError::Has(lower)),
        },
        "after" => Condition::After(time_bound(value).ok_or(SearchError::Date(name, lower))?),
        _ => Condition::Before(time_bound(value).ok_or(SearchError::Date(name, lower))?),
    };
    Ok(Some((condition, false)))
}

/// `2026-11-28` as it is (a prefix of the stored times), or an RFC 3339 time in the stored
/// form (UTC); `None` for anything else.
pub fn time_bound(value: &str) -> Option<String> {
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        let utc = at.to_offset(time::UtcOffset::UTC);
        return Some(utc.format(&Rfc3339).expect("UTC formats as RFC 3339"));
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &date)
        .is_ok()
        .then(|| value.to_string())
}

/// Appends the SQL of every term (over `inbound_messages m`) to `clauses`, its values to
/// `values`; `reader` is whose read state `is:` asks about (none: nothing is read). The
/// index lookups are bounded to the id window `{lo}`..`{hi}` (`messages::filter_sql` puts
/// the bounds in): a page is searched for newest first, a window at a time.
pub(super) fn push_sql(
    search: &Search,
    reader: Option<&str>,
    clause: &mut dyn FnMut(String, Vec<SqlValue>),
) {
    for term in &search.terms {
        let (sql, values) = condition_sql(&term.condition, reader);
        match term.negated {
            true => clause(format!("NOT ({sql})"), values),
            false => clause(sql, values),
        }
    }
}

/// The metadata columns each text condition looks in.
const FROM: &[&str] = &["header_from", "mail_from"];
const TO: &[&str] = &["header_to", "header_cc", "recipients"];
const SUBJECT: &[&str] = &["subject"];
const ALL: &[&str] = &[
    "subject",
    "header_from",
    "header_to",
    "header_cc",
    "mail_from",
    "recipients",
];

/// One condition as SQL with `?` placeholders, and its values in order.
fn condition_sql(condition: &Condition, reader: Option<&str>) -> (String, Vec<SqlValue>) {
    match condition {
        Condition::Text(text) => {
            let (meta, mut values) = text_sql(ALL, text);
            if text.chars().count() < 3 {
                return (meta, values);
            }
            values.push(fts_phrase(text).into());
            let body = "m.id IN (SELECT rowid FROM inbound_body_search WHERE inbound_body_search MATCH ? AND rowid >= {lo} AND rowid < {hi})";
            (format!("({meta} OR {body})"), values)
        }
        Condition::From(text) => text_sql(FROM, text),
        Condition::To(text) => text_sql(TO, text),
        Condition::Subject(text) => text_sql(SUBJECT, text),
        Condition::Status(outcome) => (
            "m.outcome = ?".into(),
            vec![outcome.as_str().to_string().into()],
        ),
        Condition::Read => match reader {
            Some(reader) => (
                "EXISTS (SELECT 1 FROM inbound_reads r WHERE r.reader = ? AND r.message_id = m.id)"
                    .into(),
                vec![reader.to_string().into()],
            ),
            None => ("0".into(), Vec::new()),
        },
        Condition::HasAttachment => ("m.attachments > 0".into(), Vec::new()),
        Condition::After(at) => ("m.received_at >= ?".into(), vec![at.clone().into()]),
        Condition::Before(at) => ("m.received_at < ?".into(), vec![at.clone().into()]),
    }
}

/// `text` inside any of `columns`: the trigram index for 3+ characters, `LIKE` otherwise.
fn text_sql(columns: &[&str], text: &str) -> (String, Vec<SqlValue>) {
    if text.chars().count() >= 3 {
        let query = format!("{{{}}} : {}", columns.join(" "), fts_phrase(text));
        return (
            "m.id IN (SELECT rowid FROM inbound_search WHERE inbound_search MATCH ? AND rowid >= {lo} AND rowid < {hi})".into(),
            vec![query.into()],
        );
    }
    let pattern = format!("%{}%", like_escape(text));
    let sql = columns
        .iter()
        .map(|column| format!("m.{column} LIKE ? ESCAPE '\\'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let values = columns.iter().map(|_| pattern.clone().into()).collect();
    (format!("({sql})"), values)
}

/// `text` as one FTS5 string (a phrase: with trigrams, a substring).
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Escapes `\`, `%` and `_` for a `LIKE … ESCAPE '\'` pattern.
pub(super) fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> Vec<(bool, Condition)> {
        Search::parse(query)
            .unwrap()
            .terms
            .into_iter()
            .map(|t| (t.negated, t.condition))
            .collect()
    }

    #[test]
    fn words_operators_quotes_and_negation() {
        use Condition::*;
        assert_eq!(
            parsed(r#"invoice FROM:Alice to:"Bob Smith" "two words" -has:attachment is:unread"#),
            vec![
                (false, Text("invoice".into())),
                (false, From("Alice".into())),
                (false, To("Bob Smith".into())),
                (false, Text("two words".into())),
                (true, HasAttachment),
                (true, Read),
            ]
        );
        assert_eq!(parsed("-is:unread"), vec![(false, Read)]);
        assert_eq!(
            parsed("status:Rejected after:2026-11-28 before:2026-11-29T10:00:00+01:00"),
            vec![
                (false, Status(Outcome::Rejected)),
                (false, After("2026-11-28".into())),
                (false, Before("2026-11-29T09:00:00Z".into())),
            ]
        );
        assert_eq!(parsed("   "), vec![]);
        assert_eq!(
            parsed("\u{0}ab\u{0}c\u{7}"),
            vec![(false, Text("ab".into())), (false, Text("c".into()))]
        );
    }

    #[test]
    fn unknown_operators_and_quoted_colons_are_text() {
        use Condition::*;
        assert_eq!(
            parsed(r#"re:hello http://x.test "from:alice" - -"#),
            vec![
                (false, Text("re:hello".into())),
                (false, Text("http://x.test".into())),
                (false, Text("from:alice".into())),
                (false, Text("-".into())),
                (false, Text("-".into())),
            ]
        );
    }

    #[test]
    fn bad_values_say_what_is_wanted() {
        for (query, error) in [
            ("from:", SearchError::Empty("from")),
            ("status:lost", SearchError::Status("lost".into())),
            ("is:starred", SearchError::Is("starred".into())),
            ("has:link", SearchError::Has("link".into())),
            (
                "after:yesterday",
                SearchError::Date("after", "yesterday".into()),
            ),
            (
                "until:2026-13-01",
                SearchError::Date("before", "2026-13-01".into()),
            ),
            ("\"open", SearchError::Unclosed),
        ] {
            assert_eq!(Search::parse(query), Err(error), "{query}");
        }
        let long = "a ".repeat(MAX_TERMS + 1);
        assert_eq!(Search::parse(&long), Err(SearchError::TooLong));
    }

    #[test]
    fn hostile_text_stays_one_fts_string() {
        assert_eq!(fts_phrase(r#"a" OR "b"#), r#""a"" OR ""b""#);
        let (sql, values) = text_sql(SUBJECT, r#"x" NEAR("#);
        assert!(!sql.contains("NEAR"));
        assert_eq!(
            values,
            vec![SqlValue::from(r#"{subject} : "x"" NEAR(""#.to_string())]
        );
        let (sql, values) = text_sql(FROM, "%_");
        assert_eq!(
            sql,
            "(m.header_from LIKE ? ESCAPE '\\' OR m.mail_from LIKE ? ESCAPE '\\')"
        );
        assert_eq!(values[0], SqlValue::from(r"%\%\_%".to_string()));
    }
}

//! mail-parser's corpus of real-world messages (`tests/data/corpus/`, see its README) through
//! the real server, into every format.
//!
//! Each message is sent as a client would send it: LF line ends turned into CRLF, dot-stuffed.
//! A file with bare LFs is sent a second time with them intact inside DATA, where they are
//! content (ARCHITECTURE.md invariant 2). Every message goes to one address per format in
//! `Format::ALL`, whose target answers 200, and must get 250: a panic while parsing or
//! building the payload would be a 451. Every JSON body must parse.
//!
//! For JSON Normalized, `plain`, `html` and the attachments' file names and sizes must agree
//! with the parse that mail-parser 1.0.1 expects (`NAME.crlf.json`, the CRLF form we send),
//! read with our contract's rules (contract §1.4–1.5) rather than mail-parser's own body selection:
//!
//! - `plain` is the first `text` part in the root message's `text_body` list, else its first
//!   `text` part with no file name and no `attachment` disposition (as `ParsedMessage::parse`
//!   does); so an HTML-only message has no `plain`, where mail-parser converts the HTML;
//! - `html` likewise with `html` parts and the `html_body` list;
//! - every other leaf of the root message is an attachment, in order, inline images
//!   included; its size is the decoded length (text as UTF-8; a forwarded message as sent,
//!   once any transfer encoding is undone).
//!
//! A file without a final line break is sent with one, as DATA requires; the body that ends
//! the message then has a CRLF more than mail-parser saw, which counts as agreement.
//!
//! We parse with mail-parser 0.11.9, so where it disagrees with 1.0.1's expectation the
//! difference is listed in [`EXCEPTIONS`] with the reason. The test fails on a new difference
//! and on an exception that no longer is one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use postern::config::Format;
use serde_json::Value;

use crate::support::{Receiver, Smtp, TestApp};

/// Where our JSON Normalized payload and mail-parser 1.0.1's expected parse disagree:
/// `(message, field, reason)`, a message being `folder/name` without `.eml`. Every reason is
/// a mail-parser 0.11.9 behaviour that 1.0 changed (1.0 needs Rust 1.98); the `#` numbers are
/// mail-parser issues, "review" items are in `regressions/README.md`.
#[rustfmt::skip]
const EXCEPTIONS: &[(&str, Field, &str)] = &[
    ("malformed/000", Field::Plain, CUT_PART),
    ("malformed/000", Field::Html, CUT_PART),
    ("malformed/000", Field::Attachments, CUT_PART),
    ("malformed/001", Field::Plain, PREFIX_BOUNDARY),
    ("malformed/007", Field::Plain, PREFIX_BOUNDARY),
    ("malformed/007", Field::Attachments, PREFIX_BOUNDARY),
    ("malformed/009", Field::Attachments, OUTER_DELIMITER),
    ("malformed/011", Field::Attachments, OUTER_DELIMITER),
    ("malformed/012", Field::Attachments, OUTER_DELIMITER),
    ("malformed/016", Field::Attachments, "boundaries over RFC 2046's 70 characters, each a prefix of the next: 0.11.9 and 1.0 cut the parts differently"),
    ("malformed/023", Field::Plain, "0.11.9 panics (\"Invalid part ID\"), so ParsedMessage::parse passes the message on unparsed"),
    ("regressions/alternative-attachment-disposition", Field::Plain, "0.11.9 takes an alternative child with `Content-Disposition: attachment` for the text body (#67)"),
    ("regressions/alternative-attachment-disposition", Field::Attachments, "0.11.9 takes an alternative child with `Content-Disposition: attachment` for the text body (#67)"),
    ("regressions/alternative-named-html", Field::Html, "0.11.9 takes an alternative child with a `name` parameter for the HTML body (#67)"),
    ("regressions/alternative-named-html", Field::Attachments, "0.11.9 takes an alternative child with a `name` parameter for the HTML body (#67)"),
    ("regressions/date-zone-z", Field::Plain, "0.11.9's date parser reads past a `Z` zone and the blank line after it, so the body becomes header"),
    ("regressions/delimiter-rule", Field::Plain, "0.11.9 takes `--BND` in the middle of a line for a delimiter (RFC 2046 §5.1.1 wants it at a line start)"),
    ("regressions/empty-part-then-cut-part", Field::Plain, CUT_PART),
    ("regressions/empty-part-then-cut-part", Field::Attachments, CUT_PART),
    ("regressions/fold-after-parameter-equals", Field::Attachments, "0.11.9 loses a parameter folded right after `=` (#165), here the boundary, so the multipart is one opaque part"),
    ("regressions/inner-headers-cut-by-outer-delimiter", Field::Plain, CUT_PART),
    ("regressions/inner-multipart-closed-by-outer", Field::Plain, OUTER_DELIMITER),
    ("regressions/inner-multipart-closed-by-outer", Field::Attachments, OUTER_DELIMITER),
    ("regressions/nested-headers-cut-by-delimiter", Field::Plain, "0.11.9 types a message/rfc822 part cut by a delimiter as text, so it becomes the plain body (review M7)"),
    ("regressions/nested-headers-cut-by-delimiter", Field::Attachments, "0.11.9 types a message/rfc822 part cut by a delimiter as text, so it becomes the plain body (review M7)"),
    ("regressions/part-without-blank-line", Field::Plain, CUT_PART),
    ("regressions/part-without-blank-line", Field::Attachments, CUT_PART),
    ("regressions/utf16-dangling-byte", Field::Plain, DANGLING_UTF16),
    ("regressions/utf7-terminators", Field::Plain, "0.11.9 drops the character that ends a UTF-7 base64 run (review M2)"),
    ("regressions/utf7-terminators", Field::Attachments, "0.11.9 drops the character that ends a UTF-7 base64 run (review M2)"),
    ("rfc/000", Field::Attachments, BAD_BASE64),
    ("thirdparty/002", Field::Attachments, BAD_BASE64),
    ("thirdparty/005", Field::Plain, DANGLING_UTF16),
    ("thirdparty/015", Field::Attachments, "0.11.9 lets a forwarded message's unterminated multipart run over the outer delimiters: three forwarded messages become one"),
];

const CUT_PART: &str = "0.11.9 drops a part whose header block runs into the next delimiter; 1.0 keeps it as an empty text part (review M7)";
const PREFIX_BOUNDARY: &str = "nested boundaries `a` and `ab`: 0.11.9 matches a delimiter by prefix, 1.0 wants the whole boundary (RFC 2046 §5.1.1)";
const OUTER_DELIMITER: &str = "0.11.9 does not let an outer delimiter end an inner multipart, so the rest of the message joins the inner part";
const BAD_BASE64: &str = "invalid base64 (placeholder text, data after the padding): 0.11.9 and 1.0 recover different bytes";
const DANGLING_UTF16: &str =
    "a dangling byte at the end of UTF-16: 0.11.9 drops it, 1.0 decodes it as U+FFFD (review L1)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Plain,
    Html,
    Attachments,
}

/// The corpus folders, in mail-parser's order. `issues/` has no expected parses.
const FOLDERS: [&str; 6] = [
    "rfc",
    "legacy",
    "thirdparty",
    "malformed",
    "regressions",
    "issues",
];

/// Concurrent SMTP sessions: enough to overlap the POSTs and the SQLite writes, few enough
/// for a two-core machine.
const SESSIONS: usize = 4;

struct Message {
    /// `folder/name`.
    name: String,
    raw: Vec<u8>,
    /// mail-parser 1.0.1's parse of the CRLF form.
    expected: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    /// CRLF line ends, as a client sends a file.
    Crlf,
    /// The file's bytes as they are, bare LFs included.
    BareLf,
}

struct Job {
    message: usize,
    wire: Wire,
    format: &'static str,
    recipient: String,
    data: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_every_format() {
    let messages = load_corpus();
    let with_expectation = messages.iter().filter(|m| m.expected.is_some()).count();
    eprintln!(
        "corpus: {} messages, {with_expectation} with an expected parse",
        messages.len()
    );

    let receiver = Receiver::start().await;
    let app = TestApp::start(&config(&receiver)).await;

    let jobs = jobs(&messages);
    let job_count = jobs.len();
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let mut sessions = tokio::task::JoinSet::new();
    for _ in 0..SESSIONS {
        let queue = queue.clone();
        let smtp = app.smtp().await;
        sessions.spawn(send_all(smtp, queue));
    }
    let mut failures = Vec::new();
    while let Some(result) = sessions.join_next().await {
        for (job, reply) in result.unwrap() {
            let name = &messages[job.message].name;
            failures.push(format!("{name} ({:?}, {}): {reply}", job.wire, job.format));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {job_count} messages did not get 250 from a 200 target:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // One POST per message, every JSON body valid; JSON Normalized bodies by recipient.
    let requests = receiver.requests();
    assert_eq!(requests.len(), job_count, "one POST per message");
    let mut normalized = BTreeMap::new();
    for request in &requests {
        if !request
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json"))
        {
            continue;
        }
        let json: Value = serde_json::from_slice(&request.body)
            .unwrap_or_else(|e| panic!("a JSON body does not parse: {e}"));
        let to = json["envelope"]["to"].as_str().unwrap_or_default();
        if to.ends_with(&format!("@{}", domain(Format::JsonNormalized.as_str()))) {
            normalized.insert(to.to_string(), json);
        }
    }

    let mut differences = BTreeMap::new();
    for (index, message) in messages.iter().enumerate() {
        let Some(expected) = &message.expected else {
            continue;
        };
        let payload = &normalized[&recipient(index, Wire::Crlf, Format::JsonNormalized.as_str())];
        let expected = Bodies::expected(expected);
        let actual = Bodies::of_payload(payload);
        let crlf_added = !message.raw.ends_with(b"\n");
        for (field, expected, actual) in expected.compare(&actual, crlf_added) {
            differences.insert((message.name.clone(), field), (expected, actual));
        }
    }
    check_exceptions(&messages, &differences);
    let differing: BTreeSet<&String> = differences.keys().map(|(name, _)| name).collect();
    eprintln!(
        "corpus: {} of {with_expectation} expected parses agree; {} listed differences",
        with_expectation - differing.len(),
        differences.len()
    );
}

/// Fails on a difference that is not listed, and on a listed one that is gone.
fn check_exceptions(
    messages: &[Message],
    differences: &BTreeMap<(String, Field), (String, String)>,
) {
    let present: BTreeSet<&str> = messages.iter().map(|m| m.name.as_str()).collect();
    let legacy_loaded = present.iter().any(|name| name.starts_with("legacy/"));
    let listed: BTreeSet<(String, Field)> = EXCEPTIONS
        .iter()
        .map(|(name, field, _)| (name.to_string(), *field))
        .collect();
    let mut problems = Vec::new();
    for ((name, field), (expected, actual)) in differences {
        if !listed.contains(&(name.clone(), *field)) {
            problems.push(format!(
                "{name} {field:?} differs from mail-parser 1.0.1's expectation:\n  expected {expected}\n  actual   {actual}"
            ));
        }
    }
    for (name, field, reason) in EXCEPTIONS {
        if !present.contains(name) {
            // legacy/ is only there once fetched (tests/data/corpus/README.md).
            if !name.starts_with("legacy/") || legacy_loaded {
                problems.push(format!(
                    "{name}: listed exception for a message not in the corpus"
                ));
            }
            continue;
        }
        if !differences.contains_key(&(name.to_string(), *field)) {
            problems.push(format!(
                "{name} {field:?} now agrees with mail-parser 1.0.1: remove its exception ({reason})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus/mail-parser-1.0.1")
}

/// `.ci/run` fetches `legacy/` and sets this, so that CI cannot silently skip it.
fn legacy_required() -> bool {
    std::env::var_os("TEST_CORPUS_LEGACY").is_some_and(|v| v == "required")
}

fn load_corpus() -> Vec<Message> {
    let mut messages = Vec::new();
    for folder in FOLDERS {
        let dir = corpus_dir().join(folder);
        if folder == "legacy" && !dir.exists() {
            assert!(
                !legacy_required(),
                "{} is missing: run tests/data/corpus/fetch-legacy",
                dir.display()
            );
            eprintln!("corpus: skipping legacy/ (54 messages): run tests/data/corpus/fetch-legacy");
            continue;
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        assert!(!paths.is_empty(), "no message in {}", dir.display());
        paths.sort();
        for path in paths {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            messages.push(Message {
                name: format!("{folder}/{stem}"),
                raw: std::fs::read(&path).unwrap(),
                expected: read_json(&path.with_extension("crlf.json")),
            });
        }
    }
    messages
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    Some(serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// One address per format, each posting to a target that answers 200.
fn config(receiver: &Receiver) -> String {
    let mut toml = String::from("[server]\nhostname = \"mx.postern.test\"\n");
    for (name, _) in Format::ALL {
        toml.push_str(&format!(
            "\n[[address]]\naddress = \"*@{}\"\ntarget = \"{}\"\nformat = \"{name}\"\n",
            domain(name),
            receiver.url("/status/200"),
        ));
    }
    toml
}

/// `json+n` → `json-n.corpus.test`.
fn domain(format: &str) -> String {
    format!("{}.corpus.test", format.replace('+', "-"))
}

fn recipient(message: usize, wire: Wire, format: &str) -> String {
    let wire = match wire {
        Wire::Crlf => "crlf",
        Wire::BareLf => "lf",
    };
    format!("m{message}-{wire}@{}", domain(format))
}

fn jobs(messages: &[Message]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let mut wires = vec![(Wire::Crlf, as_transmitted(&crlf(&message.raw)))];
        if has_bare_lf(&message.raw) {
            wires.push((Wire::BareLf, as_transmitted(&message.raw)));
        }
        for (wire, data) in wires {
            for (format, _) in Format::ALL {
                jobs.push(Job {
                    message: index,
                    wire,
                    format,
                    recipient: recipient(index, wire, format),
                    data: data.clone(),
                });
            }
        }
    }
    jobs
}

/// A CR before every LF that has none (mail-parser's CRLF form of its fixtures).
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 16);
    let mut last = 0;
    for &byte in raw {
        if byte == b'\n' && last != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        last = byte;
    }
    out
}

fn has_bare_lf(raw: &[u8]) -> bool {
    raw.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
}

/// DATA content as a client transmits it (RFC 5321 §4.5.2): a dot doubled at the start of
/// each line, where lines end in CRLF (after a bare LF the server sees no line start), and a
/// final CRLF added if the file has none, then the terminating `.` CRLF.
fn as_transmitted(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 16);
    let mut line_start = true;
    for (i, &byte) in content.iter().enumerate() {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n' && i > 0 && content[i - 1] == b'\r';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Sends jobs from the queue over one session until it is empty, pipelining MAIL, RCPT and
/// DATA (RFC 2920). Returns the jobs that did not get 250, with the reply.
async fn send_all(mut smtp: Smtp, queue: Arc<Mutex<VecDeque<Job>>>) -> Vec<(Job, String)> {
    smtp.ehlo().await;
    let mut failed = Vec::new();
    loop {
        let Some(job) = queue.lock().unwrap().pop_front() else {
            break;
        };
        let commands = format!(
            "MAIL FROM:<corpus@example.com>\r\nRCPT TO:<{}>\r\nDATA\r\n",
            job.recipient
        );
        smtp.send(commands.as_bytes()).await;
        let replies = [smtp.reply().await, smtp.reply().await, smtp.reply().await];
        if !(replies[0].starts_with("250")
            && replies[1].starts_with("250")
            && replies[2].starts_with("354"))
        {
            failed.push((job, replies.join(" / ")));
            smtp.cmd("RSET", "250").await;
            continue;
        }
        // One write: a separate small one for the final dot would wait for a delayed ACK.
        smtp.send(&job.data).await;
        let reply = smtp.reply().await;
        if !reply.starts_with("250 ") {
            failed.push((job, reply));
        }
    }
    smtp.cmd("QUIT", "221").await;
    failed
}

/// What JSON Normalized says about the bodies, reduced to what the corpus can check.
#[derive(Debug, PartialEq)]
struct Bodies {
    plain: Option<String>,
    html: Option<String>,
    /// File name and decoded size.
    attachments: Vec<(String, usize)>,
}

impl Bodies {
    fn of_payload(payload: &Value) -> Bodies {
        let text = |key: &str| payload[key].as_str().map(str::to_string);
        let attachments = payload["attachments"]
            .as_array()
            .expect("attachments is an array")
            .iter()
            .map(|a| {
                let name = a["file_name"].as_str().unwrap_or_default().to_string();
                let size = a["size"].as_str().and_then(|s| s.parse().ok());
                (name, size.expect("size is a decimal string"))
            })
            .collect();
        Bodies {
            plain: text("plain"),
            html: text("html"),
            attachments,
        }
    }

    /// Our rules applied to mail-parser 1.0.1's expected parse (see the module comment).
    fn expected(corpus: &Value) -> Bodies {
        let root = &corpus["messages"][0];
        let parts: Vec<&Value> = corpus["parts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["message"] == 0)
            .collect();
        let by_id = |id: &Value| parts.iter().copied().find(|p| p["id"] == *id);
        let body = |list: &str, kind: &str| {
            root[list]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(by_id)
                .find(|p| p["kind"] == kind)
                .or_else(|| {
                    parts.iter().copied().find(|p| {
                        p["kind"] == kind
                            && attachment_name(p).is_none()
                            && disposition(p).is_none_or(|d| !d.eq_ignore_ascii_case("attachment"))
                    })
                })
        };
        let plain = body("text_body", "text");
        let html = body("html_body", "html");
        let is_body = |p: &Value| [plain, html].iter().flatten().any(|b| b["id"] == p["id"]);
        let attachments = parts
            .iter()
            .filter(|p| p["kind"] != "multipart" && !is_body(p))
            .map(|p| {
                (
                    attachment_name(p).unwrap_or_default(),
                    decoded_size(corpus, p),
                )
            })
            .collect();
        let text = |part: Option<&Value>| part.map(|p| p["text"].as_str().unwrap().to_string());
        Bodies {
            plain: text(plain),
            html: text(html),
            attachments,
        }
    }

    /// `(field, expected, actual)` for each field that differs. `crlf_added`: the file has no
    /// final line break, so the CRLF that ends DATA's last line is in our message, and in
    /// whichever body ends it, but not in what mail-parser parsed.
    fn compare(&self, actual: &Bodies, crlf_added: bool) -> Vec<(Field, String, String)> {
        let same = |expected: &Option<String>, actual: &Option<String>| {
            expected == actual
                || crlf_added && expected.as_ref().map(|e| format!("{e}\r\n")) == *actual
        };
        let mut out = Vec::new();
        if !same(&self.plain, &actual.plain) {
            out.push((Field::Plain, show(&self.plain), show(&actual.plain)));
        }
        if !same(&self.html, &actual.html) {
            out.push((Field::Html, show(&self.html), show(&actual.html)));
        }
        if self.attachments != actual.attachments {
            out.push((
                Field::Attachments,
                format!("{:?}", self.attachments),
                format!("{:?}", actual.attachments),
            ));
        }
        out
    }
}

fn show(text: &Option<String>) -> String {
    match text {
        None => "null".into(),
        Some(text) if text.len() > 120 => {
            let cut = text.char_indices().nth(120).map_or(text.len(), |(i, _)| i);
            format!("{:?}… ({} bytes)", &text[..cut], text.len())
        }
        Some(text) => format!("{text:?}"),
    }
}

/// A parameter of a part's header as mail-parser 1.0.1 serialises it:
/// `{"content_type": {"type", "subtype", "attributes": [[name, value], …]}}`.
fn header<'a>(part: &'a Value, name: &str) -> Option<&'a Value> {
    part["headers"]
        .as_array()?
        .iter()
        .find(|h| {
            h["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|h| &h["value"]["content_type"])
}

fn parameter(part: &Value, header_name: &str, parameter: &str) -> Option<String> {
    header(part, header_name)?["attributes"]
        .as_array()?
        .iter()
        .find(|kv| {
            kv[0]
                .as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case(parameter))
        })
        .and_then(|kv| kv[1].as_str())
        .map(str::to_string)
}

/// `filename` of Content-Disposition, else `name` of Content-Type (mail-parser's rule).
fn attachment_name(part: &Value) -> Option<String> {
    parameter(part, "Content-Disposition", "filename")
        .or_else(|| parameter(part, "Content-Type", "name"))
}

fn disposition(part: &Value) -> Option<&str> {
    header(part, "Content-Disposition")?["type"].as_str()
}

fn decoded_size(corpus: &Value, part: &Value) -> usize {
    let offsets = |p: &Value, start: &str| {
        (p["offset_end"].as_u64().unwrap() - p[start].as_u64().unwrap()) as usize
    };
    match part["kind"].as_str().unwrap() {
        "text" | "html" => part["text"].as_str().unwrap().len(),
        "binary" | "inline_binary" => base64::engine::general_purpose::STANDARD
            .decode(part["binary"].as_str().unwrap())
            .expect("binary contents are base64")
            .len(),
        // The forwarded message itself, after any transfer encoding is undone.
        "message" => {
            let nested = &corpus["messages"][part["nested"].as_u64().unwrap() as usize];
            offsets(
                &corpus["parts"][nested["root"].as_u64().unwrap() as usize],
                "offset_header",
            )
        }
        other => panic!("unknown part kind {other}"),
    }
}

//! The payload formats (contract §1), compared with golden files, checked over real SMTP and
//! real HTTP, and read back by two independent form-data parsers.
//!
//! `UPDATE_GOLDEN=1 cargo test` rewrites the golden files; review the diff before committing.

use std::path::PathBuf;

use base64::Engine as _;
use postern::config::Format;
use postern::inbound::format::{self, FormatOptions, PayloadEnvelope, Spf};
use postern::mail::message::ParsedMessage;
use serde_json::Value;

use crate::support::receiver::Captured;
use crate::support::{Receiver, TestApp, config_with, config_with_format};

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// Sends `message` (raw bytes, CRLF lines, no final dot) and returns the POSTed JSON.
async fn post_of(message: &[u8]) -> Value {
    post_with("json+n", message).await.json()
}

/// Sends `message` to an address with `format` and returns the POST as the app got it.
async fn post_with(format: &str, message: &[u8]) -> Captured {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with_format(
        &[("*@example.com", receiver.url("/status/200"))],
        format,
        "",
    ))
    .await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<sender@example.com>", "250").await;
    smtp.cmd("RCPT TO:<to@example.com>", "250").await;
    smtp.cmd("RCPT TO:<another@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    // Dot-stuff like a real client.
    let mut stuffed = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    if !stuffed.ends_with(b"\r\n") {
        stuffed.extend_from_slice(b"\r\n");
    }
    smtp.send(&stuffed).await;
    smtp.send(b".\r\n").await;
    let reply = smtp.reply().await;
    assert!(reply.starts_with("250 "), "{reply}");
    receiver.single()
}

/// The payload carries the message as the client sent it: no trace line of Postern's own in
/// the headers (contract §1.8: it stays in the stored copy), so nothing in it varies.
fn normalise(json: Value) -> Value {
    assert!(
        !json["headers"].to_string().contains("(Postern)"),
        "Postern's Received line in the payload: {}",
        json["headers"]
    );
    json
}

fn assert_golden(name: &str, actual: &Value) {
    let path = data(&format!("golden/{name}.json"));
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(pretty, expected, "payload differs from {}", path.display());
}

#[tokio::test]
async fn json_normalized_matches_the_golden_file() {
    let message = std::fs::read(data("messages/golden.eml")).unwrap();
    let json = normalise(post_of(&message).await);
    assert_golden("json_normalized", &json);

    // The properties the golden file encodes, stated once more so that a careless
    // UPDATE_GOLDEN cannot hide a regression.
    let headers = &json["headers"];
    assert_eq!(headers["subject"], "Café naïve ✓");
    assert_eq!(headers["x_tag"], serde_json::json!(["one", "two", "three"]));
    assert_eq!(
        headers["received"].as_array().unwrap().len(),
        2,
        "the sender's two, not ours"
    );
    assert_eq!(
        headers["dkim_signature"],
        "v=1; a=rsa-sha256; c=relaxed/relaxed;        d=example.com; s=s1;\th=from:to:subject; bh=abc=; b=def="
    );
    let keys: Vec<&str> = headers
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(&keys[..3], ["received", "dkim_signature", "date"]);
    let envelope = &json["envelope"];
    assert_eq!(
        envelope["recipients"],
        serde_json::json!(["to@example.com", "another@example.com"])
    );
    assert_eq!(envelope["tls"], false);
    assert_eq!(
        envelope["spf"],
        serde_json::json!({"result": "none", "domain": "example.com"})
    );
    let md5 = format!(
        "{:x}",
        <md5::Md5 as md5::Digest>::digest(message_as_sent(&message))
    );
    assert_eq!(envelope["md5"], md5);
    assert_eq!(json["plain"], "Test with HTML. Café.");
    // Not a reply: the whole plain body is new text (contract §1.4).
    assert_eq!(json["reply_plain"], "Test with HTML. Café.");
    let attachments = json["attachments"].as_array().unwrap();
    assert_eq!(attachments[0]["content"], "dGVzdGZpbGU=");
    assert_eq!(attachments[0]["size"], "8");
    assert_eq!(attachments[1]["disposition"], "inline");
    assert_eq!(attachments[1]["content_id"], "<logo123>");
    assert_eq!(attachments[1]["size"], "64");
}

/// What the client transmits as message content: the file plus the final CRLF.
fn message_as_sent(message: &[u8]) -> Vec<u8> {
    let mut sent = message.to_vec();
    if !sent.ends_with(b"\r\n") {
        sent.extend_from_slice(b"\r\n");
    }
    sent
}

#[tokio::test]
async fn plain_message_without_mime() {
    let json =
        normalise(post_of(b"From: a@example.com\r\nSubject: plain\r\n\r\nJust text.\r\n").await);
    assert_golden("json_normalized_plain", &json);
    assert_eq!(json["plain"], "Just text.\r\n");
    assert_eq!(json["reply_plain"], "Just text.");
    assert_eq!(json["html"], Value::Null);
    assert_eq!(json["attachments"], serde_json::json!([]));
}

/// A Gmail-style top-posted reply: `reply_plain` is the new text, `plain` keeps everything.
#[tokio::test]
async fn reply_plain_is_the_new_text_of_a_reply() {
    let json = post_of(
        "From: Anna <anna@example.com>\r\n\
         To: Ben <ben@example.com>\r\n\
         Subject: Re: Q1 numbers\r\n\
         In-Reply-To: <q1@example.com>\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\
         \r\n\
         Sounds good, I'll bring the slides.\r\n\
         \r\n\
         Anna\r\n\
         \r\n\
         On Mon, Jan 16, 2012 at 5:00\u{202f}PM Ben <ben@example.com> wrote:\r\n\
         \r\n\
         > Can you present the Q1 numbers on Thursday?\r\n\
         >\r\n\
         > Ben\r\n"
            .as_bytes(),
    )
    .await;
    assert_eq!(
        json["reply_plain"],
        "Sounds good, I'll bring the slides.\r\n\r\nAnna"
    );
    let plain = json["plain"].as_str().unwrap();
    assert!(
        plain.contains("> Can you present the Q1 numbers on Thursday?"),
        "{plain}"
    );
}

/// Bad input: whatever the MIME, the app still gets a payload with what could be recovered.
#[tokio::test]
async fn malformed_mime_still_delivers() {
    let cases: [(&str, &[u8]); 5] = [
        ("missing closing boundary", b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nrecovered text\r\n"),
        ("bad base64", b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n"),
        ("unknown charset", b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nbytes \xe9\xff here\r\n"),
        ("no header/body separator", b"Subject: only headers"),
        ("binary junk", b"\x00\x01\x02\xff\xfe\xfd\r\n"),
    ];
    for (name, message) in cases {
        let json = post_of(message).await;
        assert!(json["headers"].is_object(), "{name}");
        assert!(json["attachments"].is_array(), "{name}");
    }
    let json = post_of(cases[0].1).await;
    assert!(json["plain"].as_str().unwrap().contains("recovered text"));
}

// ---------------------------------------------------------------------------------------
// Every format: golden files from the pure builders, the same bytes over SMTP and HTTP.

/// The docs' example boundary (contract §1.1), for reproducible multipart golden files.
const GOLDEN_BOUNDARY: &str = "----cloudmailinboundry";

/// (golden file, format, message in tests/data/messages)
const GOLDEN_CASES: &[(&str, Format, &str)] = &[
    (
        "multipart_normalized",
        Format::MultipartNormalized,
        "golden.eml",
    ),
    ("multipart", Format::Multipart, "golden.eml"),
    ("raw", Format::Raw, "golden.eml"),
    ("json", Format::Json, "golden.eml"),
    ("original", Format::Original, "golden.eml"),
    (
        "multipart_normalized_spec",
        Format::MultipartNormalized,
        "spec_example.eml",
    ),
    ("json_spec", Format::Json, "spec_example.eml"),
    (
        "multipart_normalized_plain",
        Format::MultipartNormalized,
        "plain.eml",
    ),
];

/// The transaction [`post_with`] runs, as the builders see it.
fn smtp_envelope(message: &[u8]) -> PayloadEnvelope {
    PayloadEnvelope {
        to: "to@example.com".into(),
        recipients: vec!["to@example.com".into(), "another@example.com".into()],
        from: "sender@example.com".into(),
        helo_domain: "client.test".into(),
        remote_ip: "127.0.0.1".into(),
        tls_version: None,
        md5: format!(
            "{:x}",
            <md5::Md5 as md5::Digest>::digest(message_as_sent(message))
        ),
        spf: Spf {
            result: "none".into(),
            domain: "example.com".into(),
        },
        dkim: None,
        dmarc: None,
        store_url: None,
    }
}

/// The message as Postern passes it on: as the client sent it (its own trace line is only
/// in the stored copy).
fn smtp_raw(message: &[u8]) -> Vec<u8> {
    message_as_sent(message)
}

/// What the builder makes of `message` in `format`, with the golden boundary.
fn built(format: Format, message: &[u8]) -> postern::webhook::Payload {
    let raw = smtp_raw(message);
    format::build_with_boundary(
        format,
        &smtp_envelope(message),
        &ParsedMessage::parse(&raw),
        &raw,
        &FormatOptions::default(),
        GOLDEN_BOUNDARY,
    )
}

/// The form a golden file keeps a body in: pretty JSON, or the form-data bytes as they are.
fn golden_form(format: Format, body: &[u8]) -> (String, Vec<u8>) {
    match format {
        Format::JsonNormalized | Format::Json => {
            let json: Value = serde_json::from_slice(body).expect("the body is JSON");
            (
                "json".into(),
                (serde_json::to_string_pretty(&json).unwrap() + "\n").into_bytes(),
            )
        }
        _ => ("form".into(), body.to_vec()),
    }
}

fn assert_golden_bytes(file: &str, actual: &[u8]) {
    let path = data(&format!("golden/{file}"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "payload differs from {}:\n{}",
        path.display(),
        String::from_utf8_lossy(actual)
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = find(rest, from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// A body as the app received it, checked to carry no trace line of Postern's own.
fn without_our_trace(body: &[u8]) -> Vec<u8> {
    assert!(
        find(body, b"(Postern)").is_none(),
        "Postern's Received line in the payload"
    );
    body.to_vec()
}

/// The boundary of a `multipart/form-data` POST.
fn boundary_of(captured: &Captured) -> String {
    let content_type = captured.header("content-type").expect("a Content-Type");
    content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not form-data: {content_type}"))
        .to_string()
}

#[test]
fn every_format_matches_its_golden_file() {
    for (name, format, message) in GOLDEN_CASES {
        let message = std::fs::read(data(&format!("messages/{message}"))).unwrap();
        let payload = built(*format, &message);
        let (extension, golden) = golden_form(*format, &payload.body);
        assert_golden_bytes(&format!("{name}.{extension}"), &golden);
        if extension == "form" {
            assert_eq!(
                payload.content_type,
                format!("multipart/form-data; boundary={GOLDEN_BOUNDARY}")
            );
        }
    }

    // What the golden files encode, stated once more so that a careless UPDATE_GOLDEN
    // cannot hide a regression.
    let golden = std::fs::read(data("messages/golden.eml")).unwrap();
    let form = |format| String::from_utf8_lossy(&built(format, &golden).body).into_owned();
    let field = |name: &str, value: &str| {
        format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n--")
    };
    let normalized = form(Format::MultipartNormalized);
    for (name, value) in [
        ("plain", "Test with HTML. Café."),
        ("reply_plain", "Test with HTML. Café."),
        ("headers[subject]", "Café naïve ✓"),
        ("headers[x_tag][2]", "three"),
        ("headers[mime_version]", "1.0"),
        ("envelope[recipients][1]", "another@example.com"),
        ("envelope[tls]", "false"),
        ("envelope[spf][domain]", "example.com"),
    ] {
        assert!(normalized.contains(&field(name, value)), "{name}");
    }
    assert!(normalized.contains(
        "name=\"attachments[]\"; filename=\"logo.png\"\r\nContent-Type: image/png\r\n\r\n\u{0}\u{1}\u{2}"
    ));
    let deprecated = form(Format::Multipart);
    for (name, value) in [
        ("headers[Subject]", "Café naïve ✓"),
        ("headers[X-Tag][1]", "two"),
        ("headers[X_Tag]", "three"),
        ("headers[Mime-Version]", "1.0"),
        (
            "headers[DKIM-Signature]",
            "v=1; a=rsa-sha256; c=relaxed/relaxed;        d=example.com; s=s1;\th=from:to:subject; bh=abc=; b=def=",
        ),
    ] {
        assert!(deprecated.contains(&field(name, value)), "{name}");
    }
    assert!(deprecated.contains("name=\"attachments[0]\"; filename=\"file.txt\""));
    assert!(deprecated.contains("name=\"attachments[1]\"; filename=\"logo.png\""));
    let raw = built(Format::Raw, &golden).body;
    let mut message_field = b"name=\"message\"\r\n\r\n".to_vec();
    message_field.extend_from_slice(&smtp_raw(&golden));
    message_field.extend_from_slice(b"\r\n------cloudmailinboundry--\r\n");
    assert!(
        raw.ends_with(&message_field),
        "the message, unaltered, last"
    );
    let plain = std::fs::read(data("messages/plain.eml")).unwrap();
    let plain = built(Format::MultipartNormalized, &plain).body;
    assert!(
        find(&plain, b"attachments").is_none(),
        "no attachments, no field"
    );
    let json: Value = serde_json::from_slice(&built(Format::Json, &golden).body).unwrap();
    let keys: Vec<&str> = json["headers"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "Received",
            "Date",
            "From",
            "To",
            "Message-ID",
            "Subject",
            "Mime-Version",
            "Content-Type",
            "DKIM-Signature",
            "X-Tag",
            "X_Tag"
        ]
    );
    assert_eq!(json["attachments"][1]["size"], "64");
}

/// The body the app receives is byte for byte what the builder makes, once the boundary
/// and the time are fixed: the wiring adds and loses nothing.
#[tokio::test]
async fn every_format_arrives_over_smtp_as_built() {
    for (name, format, message) in GOLDEN_CASES {
        let message = std::fs::read(data(&format!("messages/{message}"))).unwrap();
        let captured = post_with(format.as_str(), &message).await;
        let mut body = without_our_trace(&captured.body);
        let expected = built(*format, &message);
        match format {
            Format::JsonNormalized | Format::Json => {
                assert_eq!(captured.header("content-type"), Some("application/json"));
            }
            _ => {
                let boundary = boundary_of(&captured);
                assert!(boundary.len() <= 70, "{boundary}");
                body = replace_all(&body, boundary.as_bytes(), GOLDEN_BOUNDARY.as_bytes());
            }
        }
        assert!(
            golden_form(*format, &body) == golden_form(*format, &expected.body),
            "{name}: the POST differs from the builder's output:\n{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn size_as_number_changes_only_the_size() {
    let golden = std::fs::read(data("messages/golden.eml")).unwrap();
    let raw = smtp_raw(&golden);
    let parsed = ParsedMessage::parse(&raw);
    for format in [Format::JsonNormalized, Format::Json] {
        let json = |size_as_number| -> Value {
            let options = FormatOptions {
                size_as_number,
                ..FormatOptions::default()
            };
            let payload = format::build(format, &smtp_envelope(&golden), &parsed, &raw, &options);
            serde_json::from_slice(&payload.body).unwrap()
        };
        let (default, number) = (json(false), json(true));
        assert_eq!(default["attachments"][0]["size"], "8");
        assert_eq!(number["attachments"][0]["size"], 8);
        assert_eq!(number["attachments"][1]["size"], 64);
        let mut number = number;
        for attachment in number["attachments"].as_array_mut().unwrap() {
            attachment["size"] = attachment["size"].to_string().into();
        }
        assert_eq!(number, default, "{format:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Multipart Normalized read back by real form parsers, against JSON Normalized.

/// One form-data part as a parser reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FormPart {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

impl FormPart {
    fn text(name: String, value: &str) -> FormPart {
        FormPart {
            name,
            filename: None,
            content_type: None,
            data: value.as_bytes().to_vec(),
        }
    }
}

/// The parts Multipart Normalized must carry for a message whose JSON Normalized payload is
/// `json`, derived from the JSON independently of Postern's encoder (contract §1.2–1.5, §1.7).
fn parts_from_json(json: &Value) -> Vec<FormPart> {
    fn flatten(name: String, value: &Value, out: &mut Vec<FormPart>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    flatten(format!("{name}[{key}]"), value, out);
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    flatten(format!("{name}[{i}]"), value, out);
                }
            }
            Value::String(s) => out.push(FormPart::text(name, s)),
            Value::Null => out.push(FormPart::text(name, "")),
            other => out.push(FormPart::text(name, &other.to_string())),
        }
    }
    let mut parts = Vec::new();
    for body in ["plain", "html", "reply_plain"] {
        parts.push(FormPart::text(
            body.into(),
            json[body].as_str().unwrap_or(""),
        ));
    }
    flatten("headers".into(), &json["headers"], &mut parts);
    flatten("envelope".into(), &json["envelope"], &mut parts);
    for attachment in json["attachments"].as_array().unwrap() {
        parts.push(FormPart {
            name: "attachments[]".into(),
            filename: Some(attachment["file_name"].as_str().unwrap().into()),
            content_type: Some(attachment["content_type"].as_str().unwrap().into()),
            data: base64::engine::general_purpose::STANDARD
                .decode(attachment["content"].as_str().unwrap())
                .unwrap(),
        });
    }
    parts
}

/// The PyPI `multipart` package's reading of a form-data body (tests/it/support/form_fields.py).
fn python_parts(boundary: &str, body: &[u8]) -> Vec<FormPart> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/form_fields.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(boundary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "form_fields.py failed (.ci/run installs the `multipart` package):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parts: Value = serde_json::from_slice(&output.stdout).unwrap();
    parts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| FormPart {
            name: p["name"].as_str().unwrap().into(),
            filename: p["filename"].as_str().map(str::to_string),
            content_type: p["content_type"].as_str().map(str::to_string),
            data: base64::engine::general_purpose::STANDARD
                .decode(p["data"].as_str().unwrap())
                .unwrap(),
        })
        .collect()
}

/// axum's `Multipart` extractor's (multer's) reading of the POST.
async fn axum_parts(captured: &Captured) -> Vec<FormPart> {
    use axum::extract::{FromRequest, Multipart};
    let request = axum::http::Request::builder()
        .method("POST")
        .header("content-type", captured.header("content-type").unwrap())
        .body(axum::body::Body::from(captured.body.clone()))
        .unwrap();
    let mut multipart = Multipart::from_request(request, &()).await.unwrap();
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.unwrap() {
        let name = field.name().expect("every part has a name").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let data = field.bytes().await.unwrap().to_vec();
        parts.push(FormPart {
            name,
            filename,
            content_type,
            data,
        });
    }
    parts
}

/// multer does not undo the browsers' escaping of `"`, CR and LF in names and filenames
/// (it only knows backslash escapes), so it reports them escaped.
fn as_multer_reports(mut parts: Vec<FormPart>) -> Vec<FormPart> {
    let escape = |s: &str| {
        s.replace('"', "%22")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    for part in &mut parts {
        part.name = escape(&part.name);
        part.filename = part.filename.as_deref().map(escape);
    }
    parts
}

/// Parts ordered by name; a stable sort keeps repeated names (`attachments[]`) in order.
fn by_name(mut parts: Vec<FormPart>) -> Vec<FormPart> {
    parts.sort_by(|a, b| a.name.cmp(&b.name));
    parts
}

/// How the two parsers read one message's Multipart Normalized POST, and what they must
/// find: the fields and files of its JSON Normalized POST (both sorted by name).
struct Readings {
    expected: Vec<FormPart>,
    python: Vec<FormPart>,
    axum: Vec<FormPart>,
}

/// Sends `message` to a JSON Normalized address and to a Multipart Normalized one (same
/// transaction) and reads the multipart POST with Python's `multipart` and with axum.
async fn readings(message: &[u8]) -> Readings {
    let json = post_with("json+n", message).await;
    let json: Value = serde_json::from_slice(&without_our_trace(&json.body)).unwrap();

    let captured = post_with("multipart+n", message).await;
    let python = python_parts(&boundary_of(&captured), &captured.body);
    let axum = axum_parts(&captured).await;
    // Nothing differs between the two deliveries: the payloads carry no time of ours.
    let received = |parts: Vec<FormPart>| -> Vec<FormPart> { by_name(parts) };
    Readings {
        expected: by_name(parts_from_json(&json)),
        python: received(python),
        axum: received(axum),
    }
}

impl Readings {
    fn assert_agree(&self) {
        assert_eq!(self.python, self.expected, "python multipart");
        assert_eq!(
            self.axum,
            by_name(as_multer_reports(self.expected.clone())),
            "axum Multipart"
        );
    }
}

#[tokio::test]
async fn form_parsers_read_multipart_normalized_as_json_normalized() {
    for message in ["golden.eml", "spec_example.eml", "plain.eml"] {
        let message = std::fs::read(data(&format!("messages/{message}"))).unwrap();
        readings(&message).await.assert_agree();
    }
}

/// Filenames (RFC 2231 and RFC 2047, so they may hold anything) and a header name built to
/// break out of the quoted Content-Disposition parameter: still exactly the expected parts.
#[tokio::test]
async fn hostile_names_cannot_inject_headers_or_parts() {
    let forged = "two\r\n\r\n\"; name=\"plain\"\r\nContent-Type: text/html\r\n\r\n<b>forged</b>\r\n------cloudmailinboundry\r\nContent-Disposition: form-data; name=\"plain\"\r\n\r\nforged";
    let encoded_word = format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(forged)
    );
    let message = format!(
        "From: a@example.com\r\n\
         Subject: hostile\r\n\
         X-Evil\"; filename=\"x: quoted name\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\
         \r\n\
         --b\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         the real body\r\n\
         --b\r\n\
         Content-Type: text/plain\r\n\
         Content-Disposition: attachment; filename*=UTF-8''evil%22.txt%0D%0AContent-Type%3A%20text%2Fhtml%0D%0A%0D%0A%3Cscript%3E\r\n\
         \r\n\
         payload one\r\n\
         --b\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"{encoded_word}\"\r\n\
         \r\n\
         ------cloudmailinboundry\r\n\
         Content-Disposition: form-data; name=\"plain\"\r\n\
         \r\n\
         forged\r\n\
         --b--\r\n"
    );
    let json = post_of(message.as_bytes()).await;
    let names: Vec<&str> = json["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file_name"].as_str().unwrap())
        .collect();
    // The filenames really are hostile once decoded.
    assert_eq!(
        names,
        [
            "evil\".txt\r\nContent-Type: text/html\r\n\r\n<script>",
            forged
        ]
    );
    assert!(json["headers"]["x_evil\"; filename=\"x"].is_string());

    let mut readings = readings(message.as_bytes()).await;
    let plains: Vec<&FormPart> = readings
        .python
        .iter()
        .filter(|p| p.name == "plain")
        .collect();
    assert_eq!(plains.len(), 1);
    assert_eq!(plains[0].data, b"the real body");
    let files = readings.python.iter().filter(|p| p.filename.is_some());
    assert_eq!(files.count(), 2, "{:#?}", readings.python);

    // multer (3.1) looks for `filename=` after any `;` or space in the Content-Disposition
    // line, inside quoted strings too, so it reports a filename for the text field whose
    // *name* holds `; filename=`. The part, its name and its value are still right; only
    // that phantom filename differs, and it is this parser's doing, not the body's.
    let phantom = readings
        .axum
        .iter_mut()
        .find(|p| p.name == "headers[x_evil%22; filename=%22x]")
        .expect("the quoted header name arrives as one field");
    assert_eq!(phantom.filename.as_deref(), Some("%22x]\""));
    phantom.filename = None;
    readings.assert_agree();
}

/// A forwarded message travels as a `message/rfc822` attachment, bytes as they arrived.
#[tokio::test]
async fn forwarded_message_is_an_rfc822_attachment() {
    let inner = "From: inner@example.org\r\nSubject: the original\r\n\r\nOriginal body.\r\n";
    let message = format!(
        "From: a@example.com\r\nSubject: Fwd: the original\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"original.eml\"\r\n\r\n{inner}\
--b--\r\n"
    );
    let json = post_of(message.as_bytes()).await;
    assert_eq!(json["plain"], "See below.");
    let attachments = json["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["content_type"], "message/rfc822");
    assert_eq!(attachments[0]["file_name"], "original.eml");
    let content = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        attachments[0]["content"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(content).unwrap().trim_end(),
        inner.trim_end()
    );
}

/// Contract §1.8: the raw format's `message` is the message exactly as it arrived, so
/// `envelope[md5]` is its MD5; Postern's own `Received:` line is in the stored copy only.
#[tokio::test]
async fn raw_message_is_unaltered_and_the_stored_copy_keeps_our_trace_line() {
    use md5::Digest;
    let message = "Received: from far.example by near.example; Mon, 16 Jan 2012 09:00:04 -0800\r\n\
                   From: a@example.com\r\nSubject: as sent\r\n\r\nbody\r\n";
    let captured = post_with("raw", message.as_bytes()).await;
    let parts = python_parts(&boundary_of(&captured), &captured.body);
    let field = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .data
            .clone()
    };
    let sent = field("message");
    assert_eq!(sent, message.as_bytes(), "the message as it arrived");
    let md5 = format!("{:x}", md5::Md5::digest(&sent));
    assert_eq!(String::from_utf8(field("envelope[md5]")).unwrap(), md5);

    // Dev mode keeps a copy: our trace line first, then the same bytes; the payload rebuilt
    // from it (the Payload tab, resend) and the one forwarded carry none.
    let receiver = Receiver::start().await;
    let app = TestApp::dev(Some(&receiver.url("/status/200"))).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail("a@example.com", &["to@example.com"], message)
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let forwarded = receiver.single().json();
    assert_eq!(
        forwarded["headers"]["received"],
        "from far.example by near.example; Mon, 16 Jan 2012 09:00:04 -0800"
    );
    let id = app.messages().await[0]["id"].as_i64().unwrap();
    let raw = app
        .get(&format!("/api/messages/{id}/raw"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(raw.starts_with(b"Received: from "), "{raw:?}");
    assert!(find(&raw, b"(Postern) with ESMTP;").is_some());
    assert!(find(&raw, message.as_bytes()).is_some());
    let rebuilt: Value = serde_json::from_slice(
        &app.get(&format!("/api/messages/{id}/payload"))
            .await
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        rebuilt, forwarded,
        "the Payload tab shows what was forwarded"
    );
}

/// The Original format's signed request (contract §2.9): with the address's signing secret,
/// the `signature` field is the MD5 of every other field's value (as the PyPI `multipart`
/// package reads them) in name order, then the secret — what a CloudMailin app computes.
#[tokio::test]
async fn original_format_requests_are_signed_with_the_addresses_secret() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&config_with_format(
        &[("*@example.com", receiver.url("/status/200"))],
        "original",
        "",
    ))
    .await;
    let message =
        b"From: Ann <ann@example.net>\r\nTo: to+orders@example.com\r\nSubject: Hi\r\n\r\nHello\r\n";
    let send = async || {
        let mut smtp = app.smtp().await;
        smtp.ehlo().await;
        let data = String::from_utf8_lossy(message);
        let reply = smtp
            .send_mail(
                "sender@example.net",
                &["to+orders@example.com"],
                data.trim_end(),
            )
            .await;
        assert!(reply.starts_with("250"), "{reply}");
        let captured = receiver.requests().pop().unwrap();
        python_parts(&boundary_of(&captured), &captured.body)
    };
    let value = |parts: &[FormPart], name: &str| -> Option<Vec<u8>> {
        parts
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.data.clone())
    };

    // No secret: no signature field.
    let parts = send().await;
    assert_eq!(value(&parts, "to").unwrap(), b"<to+orders@example.com>");
    assert_eq!(value(&parts, "disposable").unwrap(), b"orders");
    assert_eq!(
        value(&parts, "x_from_header").unwrap(),
        br#"["ann@example.net"]"#
    );
    assert_eq!(value(&parts, "signature"), None);

    let (status, rotated) = app
        .call(
            &app.api_key,
            reqwest::Method::POST,
            "/api/signing/rotate",
            Some(serde_json::json!({ "address": "*@example.com" })),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let secret = rotated["secret"].as_str().unwrap();
    let parts = send().await;
    let signature = String::from_utf8(value(&parts, "signature").expect("signed")).unwrap();
    let mut others: Vec<&FormPart> = parts.iter().filter(|p| p.name != "signature").collect();
    others.sort_by(|a, b| a.name.cmp(&b.name));
    let mut signed: Vec<u8> = others.iter().flat_map(|p| p.data.clone()).collect();
    signed.extend_from_slice(secret.as_bytes());
    let expected = format!("{:x}", <md5::Md5 as md5::Digest>::digest(&signed));
    assert_eq!(signature, expected);
    assert!(value(&parts, "message").unwrap().ends_with(b"Hello\r\n"));
    // The same request carries the Standard Webhooks headers too.
    let captured = receiver.requests().pop().unwrap();
    assert!(
        captured
            .header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,"))
    );
}

// ---------------------------------------------------------------------------------------
// `html_to_plain` (contract §1.4): HTML-only mail gets the HTML's text as `plain`, for the
// addresses that ask for it.

/// HTML-only mail: markup, entities, a style sheet, and a reply's quote under the new text.
const HTML_ONLY: &str = "Subject: html only\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p { color: red }</style></head><body>\r\n<p>Caf&eacute; &amp; <b>cr&egrave;me</b> &lt;ok&gt;</p>\r\nOn Mon, 1 Jan 2024, Ann wrote:<br>\r\n&gt; the old text\r\n</body></html>";

/// [`HTML_ONLY`]'s text: tags and style gone, entities decoded, `</p>` and `<br>` as breaks.
const HTML_ONLY_TEXT: &str =
    "Caf\u{e9} & cr\u{e8}me <ok>\nOn Mon, 1 Jan 2024, Ann wrote:\n> the old text";

/// A config with `on{i}@example.com` (`html_to_plain = true`) and `off{i}@example.com` for
/// the `i`th format of [`Format::ALL`], all to `target`.
fn html_to_plain_config(target: &str) -> String {
    let mut toml = String::from("[server]\nhostname = \"mx.postern.test\"\n");
    for (i, (format, _)) in Format::ALL.iter().enumerate() {
        for (prefix, option) in [("on", "html_to_plain = true\n"), ("off", "")] {
            toml.push_str(&format!(
                "\n[[address]]\naddress = \"{prefix}{i}@example.com\"\ntarget = \"{target}\"\nformat = \"{format}\"\n{option}"
            ));
        }
    }
    toml
}

/// `plain`, `html` and `reply_plain` as a POST carries them, JSON or form-data (`None`:
/// `null`, an empty field, or no field: Raw).
async fn bodies_posted(captured: &Captured) -> [Option<String>; 3] {
    let names = ["plain", "html", "reply_plain"];
    if captured.header("content-type") == Some("application/json") {
        let json = captured.json();
        return names.map(|name| json[name].as_str().map(str::to_string));
    }
    let parts = axum_parts(captured).await;
    names.map(|name| {
        let part = parts.iter().find(|part| part.name == name)?;
        let text = String::from_utf8(part.data.clone()).unwrap();
        (!text.is_empty()).then_some(text)
    })
}

#[tokio::test]
async fn html_to_plain_gives_html_only_mail_a_plain_where_the_address_asks() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&html_to_plain_config(&receiver.url("/status/200"))).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    for (i, (name, format)) in Format::ALL.iter().enumerate() {
        receiver.clear();
        for to in [format!("on{i}@example.com"), format!("off{i}@example.com")] {
            let reply = smtp
                .send_mail("sender@example.net", &[&to], HTML_ONLY)
                .await;
            assert!(reply.starts_with("250 "), "{to}: {reply}");
        }
        let [on, off]: [Captured; 2] = receiver.requests().try_into().unwrap();
        let (with, without) = (bodies_posted(&on).await, bodies_posted(&off).await);
        if *format == Format::Raw {
            // Raw carries no bodies: the message as it arrived, the same either way.
            assert_eq!(with, [None, None, None]);
            let message = |parts: Vec<FormPart>| {
                parts
                    .into_iter()
                    .find(|part| part.name == "message")
                    .unwrap()
                    .data
            };
            let (on, off) = (axum_parts(&on).await, axum_parts(&off).await);
            assert_eq!(message(on), message(off));
            continue;
        }
        let html = without[1].clone().expect("the HTML is there");
        assert!(html.contains("<b>cr&egrave;me</b>"), "{name}: {html}");
        assert_eq!(without, [None, Some(html.clone()), None], "{name}");
        assert_eq!(
            with,
            [
                Some(HTML_ONLY_TEXT.to_string()),
                Some(html),
                Some("Caf\u{e9} & cr\u{e8}me <ok>".to_string()),
            ],
            "{name}: plain from the HTML, reply_plain from that"
        );
    }
}

#[tokio::test]
async fn html_to_plain_of_hostile_html_is_one_bounded_pass() {
    // About 1 MB of HTML (the receiver takes 2 MB, and the POST carries it and its text):
    // 60,000 nested elements, 50,000 entities, then a tag and a comment left open; lines of
    // 100 tags, under SMTP's line limit.
    let lines = |unit: &str, count: usize| (unit.repeat(100) + "\r\n").repeat(count / 100);
    let html = format!(
        "{}deep{}{}<p>after</p>\r\n<b class=\"x\r\n<!-- {}",
        lines("<div>", 60_000),
        lines("</div>", 60_000),
        lines("&amp;", 50_000),
        lines("-", 10_000),
    );
    let message = format!("Subject: hostile\r\nContent-Type: text/html\r\n\r\n{html}");
    let receiver = Receiver::start().await;
    let mut config = config_with(&[("*@example.com", receiver.url("/status/200"))], "");
    config.push_str("html_to_plain = true\n");
    let app = TestApp::start(&config).await;
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    let started = std::time::Instant::now();
    let reply = smtp
        .send_mail("a@example.net", &["to@example.com"], &message)
        .await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let json = receiver.single().json();
    let plain = json["plain"].as_str().unwrap();
    // What is left open swallows the rest; a line break is a space.
    let entities = vec!["&".repeat(100); 500].join(" ");
    assert_eq!(plain, format!("deep{entities} after"));
    app.stop().await;
}

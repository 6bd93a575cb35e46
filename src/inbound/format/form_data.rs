//! A small `multipart/form-data` encoder (RFC 7578) for the multipart formats, and the
//! bracket notation that flattens JSON values into field names (contract §1.2).
//!
//! Our own rather than reqwest's `multipart`: the output must be byte-for-byte reproducible
//! for golden files (the boundary is a parameter), text fields must carry no Content-Type
//! (contract §1.7), and parts can borrow the message instead of copying attachments.
//!
//! Safety against hostile mail: names and filenames come from the message, so they are
//! escaped the way browsers do it (WHATWG HTML, "multipart/form-data encoding algorithm":
//! `"` → `%22`, CR → `%0D`, LF → `%0A`), which every form parser has to understand and which
//! leaves no way to end the quoted string or the header line early. Bodies are arbitrary
//! bytes, so the boundary is chosen after the parts are known and never occurs in any of
//! them ([`FormData::unused_boundary`]).

use std::borrow::Cow;

use serde_json::Value;

/// One part: a text field (no Content-Type, contract §1.7) or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part<'a> {
    name: String,
    file: Option<FileInfo>,
    body: Cow<'a, [u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileInfo {
    filename: String,
    content_type: String,
}

/// The parts of a form, in order. Encoding needs a boundary; see [`FormData::encode`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormData<'a> {
    parts: Vec<Part<'a>>,
}

impl<'a> FormData<'a> {
    pub fn new() -> FormData<'a> {
        FormData::default()
    }

    /// A text field; the value goes out as it is, UTF-8.
    pub fn text(&mut self, name: impl Into<String>, value: impl Into<Cow<'a, str>>) {
        let body = match value.into() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        self.parts.push(Part {
            name: name.into(),
            file: None,
            body,
        });
    }

    /// A field whose value is bytes that need not be UTF-8 (the raw message, contract §1.8).
    pub fn bytes(&mut self, name: impl Into<String>, value: &'a [u8]) {
        self.parts.push(Part {
            name: name.into(),
            file: None,
            body: Cow::Borrowed(value),
        });
    }

    /// A file part: `filename` and `Content-Type` in its header, `content` raw (binary, not
    /// base64, contract §1.5).
    pub fn file(
        &mut self,
        name: impl Into<String>,
        filename: &str,
        content_type: &str,
        content: &'a [u8],
    ) {
        self.parts.push(Part {
            name: name.into(),
            file: Some(FileInfo {
                filename: filename.to_string(),
                content_type: safe_content_type(content_type),
            }),
            body: Cow::Borrowed(content),
        });
    }

    /// Adds `value` under `name` in bracket notation (contract §1.2): object keys become
    /// `name[key]`, array elements `name[i]`, booleans `true`/`false`, numbers decimal text.
    /// [INF] `null` becomes an empty field, like an absent body (contract §1.4); an empty object or
    /// array has no scalar to carry, so it adds nothing.
    pub fn flattened(&mut self, name: &str, value: &Value) {
        for (name, value) in flatten(name, value) {
            self.text(name, value);
        }
    }

    /// The whole body: each part opened by `--boundary`, the form closed by `--boundary--`,
    /// CRLF line ends (RFC 7578 §4.1, RFC 2046 §5.1.1).
    ///
    /// The caller guarantees that `boundary` is valid (RFC 2046: 1–70 characters of
    /// `bchars`) and does not occur in any part; [`FormData::unused_boundary`] gives one.
    pub fn encode(&self, boundary: &str) -> Vec<u8> {
        let size: usize = self
            .parts
            .iter()
            .map(|p| p.body.len() + p.name.len() + boundary.len() + 64)
            .sum();
        let mut out = Vec::with_capacity(size + boundary.len() + 8);
        for part in &self.parts {
            out.extend_from_slice(b"--");
            out.extend_from_slice(boundary.as_bytes());
            out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=");
            out.extend_from_slice(quote(&part.name).as_bytes());
            if let Some(file) = &part.file {
                out.extend_from_slice(b"; filename=");
                out.extend_from_slice(quote(&file.filename).as_bytes());
                out.extend_from_slice(b"\r\nContent-Type: ");
                out.extend_from_slice(file.content_type.as_bytes());
            }
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(&part.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        out
    }

    /// `candidate`, or `candidate` with a counter appended, whichever first occurs in no
    /// part (name, filename, type or body). Terminates: the parts are finite and every try is
    /// a different string. With a random candidate the first try is all but certain to do;
    /// the check is what makes a guessed or replayed boundary harmless.
    pub fn unused_boundary(&self, candidate: &str) -> String {
        let mut boundary = candidate.to_string();
        let mut attempt = 0u64;
        while self.contains(boundary.as_bytes()) {
            attempt += 1;
            boundary = format!("{candidate}{attempt}");
        }
        boundary
    }

    /// Whether `needle` occurs anywhere in the parts as they will be encoded.
    pub fn contains(&self, needle: &[u8]) -> bool {
        self.parts.iter().any(|p| {
            contains(&p.body, needle)
                || contains(quote(&p.name).as_bytes(), needle)
                || p.file.as_ref().is_some_and(|f| {
                    contains(quote(&f.filename).as_bytes(), needle)
                        || contains(f.content_type.as_bytes(), needle)
                })
        })
    }

    /// Field names in order, for tests and debugging.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|p| p.name.as_str())
    }
}

/// `multipart/form-data; boundary=…`. Our boundaries are tokens, so no quotes are needed.
pub fn content_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

/// A fresh boundary from 128 random bits, styled after the docs' `----cloudmailinboundry`
/// (contract §1.1). Randomness is not what keeps the body well-formed
/// ([`FormData::unused_boundary`] is), so if the OS cannot give random bytes the zeros
/// are used and still checked.
pub fn random_boundary() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("----postern{hex}")
}

/// A field name or filename in a quoted Content-Disposition parameter, escaped as the WHATWG
/// HTML standard has browsers do it: `"` → `%22`, CR → `%0D`, LF → `%0A`; everything else,
/// UTF-8 included, as it is. [INF] A `%` is not escaped (browsers do not either), so a
/// filename that already contains `%22` reads back as `"` in parsers that undo this.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` in bracket notation under `name`, as (field name, text) pairs in order.
pub fn flatten(name: &str, value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten_into(name.to_string(), value, &mut out);
    out
}

fn flatten_into(name: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                flatten_into(format!("{name}[{key}]"), value, out);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                flatten_into(format!("{name}[{i}]"), value, out);
            }
        }
        Value::String(s) => out.push((name, s.clone())),
        Value::Bool(b) => out.push((name, b.to_string())),
        Value::Number(n) => out.push((name, n.to_string())),
        Value::Null => out.push((name, String::new())),
    }
}

/// The attachment's MIME type if it is a plain `type/subtype` (RFC 2045 tokens), else
/// `application/octet-stream`. mail-parser already reduces the header to this, but the part
/// header is ours to keep well-formed whatever a parser lets through.
fn safe_content_type(content_type: &str) -> String {
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match content_type.split_once('/') {
        Some((t, sub)) if is_token(t) && is_token(sub) => content_type.to_string(),
        _ => "application/octet-stream".to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn brackets_for_objects_arrays_and_scalars() {
        let envelope = json!({
            "to": "to@example.com",
            "recipients": ["a@example.com", "b@example.com"],
            "tls": true,
            "secure": false,
            "spf": {"result": "pass", "domain": "example.com"},
            "dkim": {"success": true, "result": [{"domain": "d", "selector": "s"}]},
            "spamd": {"score": 2.5, "required": 5, "symbols": []},
            "missing": null,
        });
        let fields = flatten("envelope", &envelope);
        let expected = [
            ("envelope[to]", "to@example.com"),
            ("envelope[recipients][0]", "a@example.com"),
            ("envelope[recipients][1]", "b@example.com"),
            ("envelope[tls]", "true"),
            ("envelope[secure]", "false"),
            ("envelope[spf][result]", "pass"),
            ("envelope[spf][domain]", "example.com"),
            ("envelope[dkim][success]", "true"),
            ("envelope[dkim][result][0][domain]", "d"),
            ("envelope[dkim][result][0][selector]", "s"),
            ("envelope[spamd][score]", "2.5"),
            ("envelope[spamd][required]", "5"),
            ("envelope[missing]", ""),
        ];
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(fields, expected);
    }

    #[test]
    fn encodes_text_and_file_parts() {
        let mut form = FormData::new();
        form.text("plain", "Hi");
        form.text("reply_plain", "");
        form.file("attachments[]", "a.bin", "application/pdf", b"\x00\r\n\xff");
        assert_eq!(
            form.encode("XyZ"),
            b"--XyZ\r\n\
              Content-Disposition: form-data; name=\"plain\"\r\n\
              \r\n\
              Hi\r\n\
              --XyZ\r\n\
              Content-Disposition: form-data; name=\"reply_plain\"\r\n\
              \r\n\
              \r\n\
              --XyZ\r\n\
              Content-Disposition: form-data; name=\"attachments[]\"; filename=\"a.bin\"\r\n\
              Content-Type: application/pdf\r\n\
              \r\n\
              \x00\r\n\xff\r\n\
              --XyZ--\r\n"
        );
    }

    #[test]
    fn names_and_filenames_cannot_break_out() {
        let hostile = "x.txt\"\r\nContent-Type: text/html\r\n\r\n<script>\r\n--b--\r\n";
        assert_eq!(
            quote(hostile),
            "\"x.txt%22%0D%0AContent-Type: text/html%0D%0A%0D%0A<script>%0D%0A--b--%0D%0A\""
        );
        assert_eq!(quote("résumé \\ 100%.pdf"), "\"résumé \\ 100%.pdf\"");
        let mut form = FormData::new();
        form.file("attachments[]", hostile, "text/plain\r\nX-Evil: 1", b"ok");
        let body = form.encode("b0");
        let text = String::from_utf8(body).unwrap();
        // One part header block: two header lines, then the blank line, then the body.
        let head = text.split("\r\n\r\n").next().unwrap();
        assert_eq!(head.lines().count(), 3, "{head}");
        assert!(head.ends_with("Content-Type: application/octet-stream"));
        assert_eq!(text.matches("--b0").count(), 2);
    }

    #[test]
    fn content_types_are_tokens_or_octet_stream() {
        assert_eq!(safe_content_type("image/png"), "image/png");
        assert_eq!(
            safe_content_type("application/vnd.ms-excel"),
            "application/vnd.ms-excel"
        );
        for bad in [
            "",
            "text",
            "text/",
            "/plain",
            "text/plain; x=1",
            "a/b\r\nc: d",
        ] {
            assert_eq!(
                safe_content_type(bad),
                "application/octet-stream",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_boundary_avoids_every_part() {
        let mut form = FormData::new();
        form.text("a", "--B and --B1 and B2");
        form.file("f", "B3.txt", "text/plain", b"");
        assert_eq!(form.unused_boundary("B"), "B4");
        assert_eq!(form.unused_boundary("Q"), "Q");
        let boundary = random_boundary();
        assert!(boundary.len() <= 70 && boundary.starts_with("----postern"));
        assert_ne!(boundary, random_boundary());
    }
}

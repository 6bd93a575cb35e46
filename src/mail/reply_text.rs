//! `reply_plain` (contract §1.4): the new text of a reply, without the quoted history under it.
//!
//! The rules are those GitHub's email_reply_parser made common, written out by hand over
//! lines. Reading top to bottom, the text is cut at the first of:
//! - the `### Reply Above This Line ###` marker, quoted or not;
//! - a `-- ` signature delimiter (RFC 3676), with the signature under it;
//! - an attribution that introduces a quote: "On … wrote:" (Gmail, Apple Mail, Thunderbird)
//!   and its German, French, Spanish, Dutch, Italian and Portuguese forms, also when the
//!   client wrapped it over two or three lines;
//! - Outlook's "-----Original Message-----", its underscore rule, or its From/Sent/To/Subject
//!   block, in the same languages; a forwarded-message separator.
//!
//! Above the cut, `>`-quoted lines are dropped, and so are blank lines and mobile signatures
//! ("Sent from my iPhone", "Get Outlook for iOS") left at the end. An attribution with no new
//! text above it does not cut: the answer is then below or between the quoted lines
//! (bottom-posting, inline replies), so only the attribution and the quoted lines go. Lines
//! end as the input's first line ends (CRLF or LF).
//!
//! What it does not do: read HTML, guess an undelimited signature ("Regards, Bob"), or know
//! every client and language. It is best effort by design (contract §1.4); a false cut loses new
//! text, so each pattern asks for more than a keyword (a date or a quote after an
//! attribution, two more header labels after `From:`).
//!
//! No regex: every check looks at one line, or a few lines ahead, and lines longer than
//! [`MAX_SHORT_LINE`] are only ever text, so the work is linear in the input whatever it is.

/// Markers, attributions, separators and signatures are short; a longer line is plain text.
/// This bounds the work spent on any line, however long.
const MAX_SHORT_LINE: usize = 300;

/// How far past blank lines an attribution looks for the quote it introduces.
const MAX_BLANKS_BEFORE_QUOTE: usize = 5;

/// How many labelled lines after `From:` an Outlook header block is read for.
const MAX_HEADER_BLOCK_LINES: usize = 8;

/// Lower-cased; some apps put it in their notifications so replies can be cut (contract §1.4).
const MARKER: &str = "### reply above this line ###";

/// The text of a reply above its quoted history; `None` when nothing new remains.
pub fn extract(plain: &str) -> Option<String> {
    let mut kept = Kept::new(newline_of(plain));
    let mut lines = lines(plain);
    // One buffer for every line's normalized form, so the common case allocates nothing.
    let mut norm = String::new();
    while let Some(line) = lines.next() {
        if is_blank(line) {
            kept.hold(line, true);
            continue;
        }
        let short = line.len() <= MAX_SHORT_LINE;
        if is_quoted(line) {
            // The marker counts even when the client quoted it.
            if short && line.contains('#') {
                normalize_into(line, &mut norm);
                if is_marker(&norm) {
                    break;
                }
            }
            kept.drop_quoted();
            continue;
        }
        if !short {
            kept.push(line);
            continue;
        }
        normalize_into(line, &mut norm);
        if is_marker(&norm) {
            break;
        }
        if is_signature_delimiter(line)
            || is_separator(&norm)
            || starts_header_block(&norm, lines.clone())
        {
            break;
        }
        if let Some(continuation_lines) = attribution(&norm, lines.clone()) {
            if !kept.is_empty() {
                break;
            }
            // Nothing new above the quote: the answer, if any, is written below or between
            // the quoted lines (bottom-posting, inline replies). Only the attribution goes;
            // the quoted lines are dropped one by one as the loop meets them.
            for _ in 0..continuation_lines {
                lines.next();
            }
            kept.drop_quoted();
            continue;
        }
        if is_mobile_signature(&norm) {
            kept.hold(line, false);
        } else {
            kept.push(line);
        }
    }
    kept.finish()
}

/// The kept lines, joined with the input's line ending.
struct Kept {
    newline: &'static str,
    text: String,
    /// Blank lines and mobile signatures since the last kept line, each preceded by a line
    /// ending. They are written only if more text follows, which trims the end.
    held: String,
    /// Length of the first held line, so a run of blank lines can shrink to one.
    held_first: usize,
    held_blank_only: bool,
    /// A quoted line (or attribution) was dropped since the last kept line.
    dropped: bool,
}

impl Kept {
    fn new(newline: &'static str) -> Kept {
        Kept {
            newline,
            text: String::new(),
            held: String::new(),
            held_first: 0,
            held_blank_only: true,
            dropped: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn drop_quoted(&mut self) {
        self.dropped = true;
    }

    /// A line kept only if more text follows it.
    fn hold(&mut self, line: &str, blank: bool) {
        // Blank lines at the very start go.
        if blank && self.text.is_empty() && self.held.is_empty() {
            return;
        }
        self.held.push_str(self.newline);
        self.held.push_str(line);
        if self.held_first == 0 {
            self.held_first = self.held.len();
        }
        self.held_blank_only &= blank;
    }

    fn push(&mut self, line: &str) {
        // Where a quoted block was taken out, the blank lines around it would double up.
        if self.dropped && self.held_blank_only {
            self.held.truncate(self.held_first);
        }
        if self.text.is_empty() {
            // Only a held signature line can be here; it is text after all.
            if let Some(held) = self.held.strip_prefix(self.newline) {
                self.text.push_str(held);
                self.text.push_str(self.newline);
            }
        } else {
            self.text.push_str(&self.held);
            self.text.push_str(self.newline);
        }
        self.text.push_str(line);
        self.held.clear();
        self.held_first = 0;
        self.held_blank_only = true;
        self.dropped = false;
    }

    fn finish(self) -> Option<String> {
        (!self.text.is_empty()).then_some(self.text)
    }
}

/// CRLF if the first line ends with one, else LF: the output matches the input.
fn newline_of(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if text[..i].ends_with('\r') => "\r\n",
        _ => "\n",
    }
}

/// Lines without their endings; the checks below look ahead on a clone.
fn lines(text: &str) -> impl Iterator<Item = &str> + Clone {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// Anywhere in a line, quoted or not, because the app asked for the text above it.
fn is_marker(norm: &str) -> bool {
    norm.contains('#') && norm.contains(MARKER)
}

/// RFC 3676 §4.3 says `-- `; many clients strip the trailing space.
fn is_signature_delimiter(line: &str) -> bool {
    line.trim_end() == "--"
}

/// Lines that stand alone in front of the earlier message.
fn is_separator(norm: &str) -> bool {
    // Outlook (and Outlook on the web, iOS and Android) puts 32 underscores above the
    // From/Sent/To/Subject block; mailing-list footers use a longer rule the same way.
    if norm.len() >= 30 && norm.bytes().all(|b| b == b'_') {
        return true;
    }
    // "-----Original Message-----" (Outlook), "----- Original Message -----" (Outlook
    // Express), "-------- Original Message --------" (Thunderbird), "---------- Forwarded
    // message ---------" (Gmail), in the languages Outlook and Gmail are used in most.
    if norm.starts_with("--") {
        let inner = norm.trim_matches(|c| c == '-' || c == ' ');
        return [
            "original message",
            "ursprüngliche nachricht",
            "message d'origine",
            "mensaje original",
            "oorspronkelijk bericht",
            "messaggio originale",
            "mensagem original",
            "forwarded message",
            "weitergeleitete nachricht",
            "message transféré",
            "mensaje reenviado",
            "doorgestuurd bericht",
            "messaggio inoltrato",
            "mensagem encaminhada",
        ]
        .contains(&inner);
    }
    // Apple Mail's forward.
    norm.ends_with(':')
        && [
            "begin forwarded message:",
            "anfang der weitergeleiteten nachricht:",
            "début du message réexpédié :",
            "inicio del mensaje reenviado:",
            "begin doorgestuurd bericht:",
            "inizio messaggio inoltrato:",
            "início da mensagem reencaminhada:",
        ]
        .contains(&norm)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    From,
    Date,
    To,
    Subject,
}

/// Where the colon after a header label is, if the line starts with something that short.
/// Labels are short ("Enviado el", "*Envoyé :*" with Outlook's bold), so it is near the start.
fn label_colon(text: &str) -> Option<usize> {
    let start = &text.as_bytes()[..text.len().min(24)];
    start.iter().position(|&b| b == b':')
}

/// The header label a normalized line starts with, as Outlook writes them in its reply
/// blocks: "From: …", "Von: …", "De : …" (French puts a space before the colon), "*From:* …"
/// (the bold survives as asterisks when HTML is turned into text).
fn label(norm: &str) -> Option<Label> {
    let colon = label_colon(norm)?;
    let name = norm[..colon].trim_matches(|c| c == '*' || c == ' ');
    let label = match name {
        "from" | "von" | "de" | "van" | "da" => Label::From,
        "sent" | "date" | "gesendet" | "datum" | "envoyé" | "enviado" | "enviado el"
        | "enviada em" | "enviado em" | "fecha" | "verzonden" | "verzonden op" | "inviato"
        | "data" => Label::Date,
        "to" | "cc" | "an" | "à" | "para" | "aan" | "a" => Label::To,
        "subject" | "betreff" | "objet" | "asunto" | "onderwerp" | "oggetto" | "assunto" => {
            Label::Subject
        }
        _ => return None,
    };
    Some(label)
}

/// Outlook's quoted header: `From:` followed directly by lines labelled Sent/Date, To/Cc or
/// Subject, at least two kinds of them. One `From:` line alone is too common in real text.
/// Outlook writes each field on one line, so the block ends at the first other line.
fn starts_header_block<'a>(norm: &str, following: impl Iterator<Item = &'a str>) -> bool {
    if label(norm) != Some(Label::From) {
        return false;
    }
    let mut seen = [false; 3];
    let mut next_norm = String::new();
    for next in following.take(MAX_HEADER_BLOCK_LINES) {
        // Only the label is read: a long `To:` list need not be.
        let Some(colon) = label_colon(next) else {
            break;
        };
        normalize_into(&next[..=colon], &mut next_norm);
        match label(&next_norm) {
            Some(Label::Date) => seen[0] = true,
            Some(Label::To) => seen[1] = true,
            Some(Label::Subject) => seen[2] = true,
            _ => break,
        }
    }
    seen.iter().filter(|&&s| s).count() >= 2
}

/// If the (normalized) line starts an attribution ("On … wrote:"), how many more lines it
/// takes: Gmail wraps a long one, often right after the `<` of the address.
fn attribution<'a>(
    norm: &str,
    mut following: impl Iterator<Item = &'a str> + Clone,
) -> Option<usize> {
    if !["on ", "am ", "le ", "el ", "op ", "il ", "in data ", "em "]
        .iter()
        .any(|p| norm.starts_with(p))
    {
        return None;
    }
    let mut joined = norm.to_string();
    let mut next_norm = String::new();
    for continuation_lines in 0..3 {
        if continuation_lines > 0 {
            // A quoted line is the start of the quote, never the end of its attribution.
            let next = following.next()?;
            if next.len() > MAX_SHORT_LINE || is_blank(next) || is_quoted(next) {
                return None;
            }
            normalize_into(next, &mut next_norm);
            joined.push(' ');
            joined.push_str(&next_norm);
        }
        if is_attribution(&joined) {
            // "On 3 May we shipped; as Bob wrote:" is text, so ask for more: a date in
            // a one-line attribution, or the quote it introduces.
            let quote_follows = following
                .clone()
                .take(MAX_BLANKS_BEFORE_QUOTE + 1)
                .find(|l| !is_blank(l))
                .is_some_and(is_quoted);
            let dated = continuation_lines == 0 && joined.bytes().any(|b| b.is_ascii_digit());
            return (quote_follows || dated).then_some(continuation_lines);
        }
    }
    None
}

/// `text` is normalized; the shapes are those of Gmail, Apple Mail and Thunderbird.
fn is_attribution(text: &str) -> bool {
    let starts = |prefix: &str| text.starts_with(prefix);
    let ends = |suffix: &str| text.ends_with(suffix);
    // On Mon, Jan 16, 2012 at 5:00 PM, X <x@y> wrote: / On 16 Jan 2012, at 17:00, X wrote:
    (starts("on ") && ends(" wrote:"))
        // Am 16.01.2012 um 17:00 schrieb X <x@y>:
        || (starts("am ") && text.contains(" schrieb ") && ends(":"))
        // Le lun. 16 janv. 2012 à 17:00, X <x@y> a écrit :
        || (starts("le ") && (ends(" a écrit :") || ends(" a écrit:")))
        // El lun, 16 ene 2012 a las 17:00, X (<x@y>) escribió:
        || (starts("el ") && ends(" escribió:"))
        // Op ma 16 jan. 2012 om 17:00 schreef X <x@y>: / … heeft X het volgende geschreven:
        || (starts("op ")
            && ((text.contains(" schreef ") && ends(":")) || ends(" het volgende geschreven:")))
        // Il giorno lun 16 gen 2012 alle ore 17:00 X <x@y> ha scritto: / In data …
        || ((starts("il ") || starts("in data ")) && ends(" ha scritto:"))
        // Em seg., 16 de jan. de 2012 às 17:00, X <x@y> escreveu:
        || (starts("em ") && ends(" escreveu:"))
}

/// What phones and Outlook's apps add under the text, in the languages above.
fn is_mobile_signature(norm: &str) -> bool {
    // Real ones are a few words (and Outlook's carry a link); longer is a sentence.
    if norm.len() > 80 {
        return false;
    }
    let starts = |prefix: &str| norm.starts_with(prefix);
    starts("sent from my ")
        || starts("sent from mail for windows")
        || starts("sent from outlook")
        || starts("sent from yahoo mail")
        || starts("get outlook for ")
        || starts("download outlook for ")
        || (starts("von meinem ") && norm.ends_with(" gesendet"))
        || starts("gesendet von meinem ")
        || starts("outlook für ")
        || starts("envoyé de mon ")
        || starts("envoyé depuis mon ")
        || starts("télécharger outlook pour ")
        || starts("enviado desde mi ")
        || starts("obtener outlook para ")
        || starts("verstuurd vanaf mijn ")
        || starts("verzonden vanaf mijn ")
        || starts("outlook voor ")
        || starts("inviato da ")
        || starts("scarica outlook per ")
        || starts("enviado do meu ")
        || starts("enviado de meu ")
        || starts("obter o outlook para ")
}

/// Writes `text` into `out` in lower case, with one space for every run of whitespace
/// (no-break spaces included: French puts one before the colon, and newer Gmail one before
/// AM/PM), typographic apostrophes plain and the ends trimmed. Only called on short text.
fn normalize_into(text: &str, out: &mut String) {
    out.clear();
    for c in text.trim().chars() {
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else if c == '\u{2019}' {
            out.push('\'');
        } else if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;

    /// Every `tests/data/replies/NAME.txt` against `NAME.expected.txt`; an empty expected
    /// file means `None`. One line ending at the end of an expected file is ignored (editors
    /// add one; `extract` never ends with one). All mismatches are reported together.
    #[test]
    fn fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replies");
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_str().unwrap();
                name.ends_with(".txt") && !name.ends_with(".expected.txt")
            })
            .collect();
        inputs.sort();
        assert!(inputs.len() >= 20, "only {} fixtures", inputs.len());
        let mut failures = Vec::new();
        for input in &inputs {
            let expected_path = input.with_extension("expected.txt");
            let plain = std::fs::read_to_string(input).unwrap();
            let expected = std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
            let expected = expected
                .strip_suffix('\n')
                .map(|e| e.strip_suffix('\r').unwrap_or(e))
                .unwrap_or(&expected);
            let expected = (!expected.is_empty()).then_some(expected);
            let actual = extract(&plain);
            if actual.as_deref() != expected {
                failures.push(format!(
                    "{}:\n  expected {expected:?}\n  actual   {actual:?}",
                    input.file_name().unwrap().to_string_lossy()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} fixtures differ:\n{}",
            failures.len(),
            inputs.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn empty_and_blank_inputs_have_no_reply() {
        for input in ["", "\r\n", "\n\n  \n", " \t "] {
            assert_eq!(extract(input), None, "{input:?}");
        }
    }

    #[test]
    fn line_endings_follow_the_input() {
        let lf =
            "Yes.\n\nAnna\n\nOn Mon, Jan 16, 2012 at 5:00 PM, Ben <b@example.com> wrote:\n> Ok?\n";
        assert_eq!(extract(lf).as_deref(), Some("Yes.\n\nAnna"));
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(extract(&crlf).as_deref(), Some("Yes.\r\n\r\nAnna"));
    }

    #[test]
    fn wrote_inside_text_is_text() {
        let text = "He wrote: \"ship it\", so I did.\nOn Monday I wrote: the deploy is done.";
        assert_eq!(extract(text).as_deref(), Some(text));
        // Undated and followed by text rather than a quote: still text.
        let text = "On reflection, here is what Ada wrote:\n\nfirst compute, then print.";
        assert_eq!(extract(text).as_deref(), Some(text));
    }

    #[test]
    fn mobile_signature_only_at_the_end() {
        let text = "Sent from my iPhone, these photos are blurry.\nSent from my iPhone\nsee?";
        assert_eq!(extract(text).as_deref(), Some(text));
        assert_eq!(
            extract("Ok\n\nSent from my iPhone\n").as_deref(),
            Some("Ok")
        );
    }

    #[test]
    fn one_header_label_is_not_a_header_block() {
        let text = "From: the ops team\nTo whom it may concern, the backup is done.";
        assert_eq!(extract(text).as_deref(), Some(text));
    }

    /// What a large input should give.
    enum Expect {
        /// The input without its trailing line endings.
        Unchanged,
        Nothing,
        Text(&'static str),
    }

    const MB: usize = 1024 * 1024;

    /// `unit` repeated to about `size` bytes.
    fn repeat(unit: &str, size: usize) -> String {
        unit.repeat(size / unit.len())
    }

    /// 10 MB of real mail and of the shapes the contract's limits allow (many quoted lines, one
    /// huge line).
    fn large_mail_shapes() -> Vec<(&'static str, String, Expect)> {
        let long_quote =
            "Yes.\r\n\r\nOn Mon, Jan 16, 2012 at 5:00 PM, Ben <b@example.com> wrote:\r\n"
                .to_string()
                + &repeat("> Thanks, I'll look at it tomorrow morning.\r\n", 10 * MB);
        vec![
            (
                "ordinary text",
                repeat("Thanks, I'll look at it tomorrow morning.\r\n\r\n", 10 * MB),
                Expect::Unchanged,
            ),
            (
                "a reply above a long quote",
                long_quote,
                Expect::Text("Yes."),
            ),
            (
                "quoted lines",
                repeat("> quoted text\r\n", 10 * MB),
                Expect::Nothing,
            ),
            ("bare quote marks", repeat(">\n", 10 * MB), Expect::Nothing),
            ("one huge line", "x".repeat(10 * MB), Expect::Unchanged),
            ("one huge quoted line", ">".repeat(10 * MB), Expect::Nothing),
            ("one huge blank line", " ".repeat(10 * MB), Expect::Nothing),
        ]
    }

    /// 1 MB of the shapes that only aim at a look-ahead, which is enough to show quadratic
    /// work.
    fn look_ahead_shapes() -> Vec<(&'static str, String, Expect)> {
        vec![
            (
                "blank lines",
                "Hi\n".to_string() + &repeat("\n", MB),
                Expect::Text("Hi"),
            ),
            (
                "attribution starts that never end",
                repeat("On 16 Jan 2012, at 17:00, someone said\n", MB),
                Expect::Unchanged,
            ),
            (
                "undated attributions without a quote",
                repeat("On reflection he wrote:\n\n\n\n\n\n\n", MB),
                Expect::Unchanged,
            ),
            (
                "From lines",
                repeat("From: a\nSent: b\n", MB),
                Expect::Unchanged,
            ),
            (
                "hashes",
                repeat("### not the marker ###\n", MB),
                Expect::Unchanged,
            ),
            (
                "long lines",
                repeat(&format!("On {}\n", "y".repeat(400)), MB),
                Expect::Unchanged,
            ),
        ]
    }

    /// Large inputs in every shape that could make a line-based parser slow (one test, so
    /// that the timings do not compete with each other). The bound is loose (a debug build
    /// on a shared machine takes well under 1 s per MB); quadratic work would take hours.
    #[test]
    fn large_inputs_in_linear_time() {
        for (name, input, expect) in large_mail_shapes().into_iter().chain(look_ahead_shapes()) {
            let started = Instant::now();
            let reply = extract(&input);
            let elapsed = started.elapsed();
            println!("{name}: {} bytes in {elapsed:?}", input.len());
            let expected = match expect {
                Expect::Unchanged => Some(input.trim_end()),
                Expect::Nothing => None,
                Expect::Text(text) => Some(text),
            };
            // Not assert_eq!: a failure would print megabytes.
            assert!(reply.as_deref() == expected, "{name}: unexpected reply");
            let bound = Duration::from_secs(4) * (input.len() / MB).max(1) as u32;
            assert!(
                elapsed < bound,
                "{name}: {elapsed:?} for {} bytes",
                input.len()
            );
        }
    }
}

//! The names objects get in a store (contract §3), as data: an attachment is
//! `<random>/<sanitised file name>` (the random part makes it unguessable and unique), a
//! whole message `YYYY_MM_DD_HH_MM_SS_<md5>.eml` or `.json` (UTC receive time, the MD5 of
//! the message as received); the store puts its prefix in front. Whatever a sender names a
//! file, its object name is one path segment of `[A-Za-z0-9._-]`, never `.` or `..`, at most
//! [`MAX_FILE_NAME`] bytes.

use time::OffsetDateTime;
use time::macros::format_description;

use crate::config::MessageStoreFormat;

/// The longest sanitised file name, in bytes (the extension kept within it).
pub const MAX_FILE_NAME: usize = 100;
/// The object name of an attachment whose name sanitises to nothing.
pub const UNNAMED: &str = "noname";

/// Where an object goes, below the store's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    /// The random folder of an attachment; `None` for a whole message.
    pub folder: Option<String>,
    pub file: String,
}

impl ObjectName {
    /// `folder/file`, or `file`.
    pub fn key(&self) -> String {
        match &self.folder {
            Some(folder) => format!("{folder}/{}", self.file),
            None => self.file.clone(),
        }
    }
}

/// A fresh random folder: 128 bits in lower-case hex.
pub fn random_folder() -> String {
    crate::secret::random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An attachment's object name: a fresh random folder and its sanitised file name.
pub fn attachment(file_name: &str) -> ObjectName {
    ObjectName {
        folder: Some(random_folder()),
        file: sanitise(file_name),
    }
}

/// A whole message's object name (contract §3.2).
pub fn message(received_at: OffsetDateTime, md5: &str, format: MessageStoreFormat) -> ObjectName {
    let stamp = received_at
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]_[month]_[day]_[hour]_[minute]_[second]"
        ))
        .expect("a date formats");
    let md5: String = md5.chars().filter(char::is_ascii_hexdigit).collect();
    let extension = match format {
        MessageStoreFormat::Raw => "eml",
        MessageStoreFormat::Json => "json",
    };
    ObjectName {
        folder: None,
        file: format!("{stamp}_{md5}.{extension}"),
    }
}

/// A file name made safe to be one segment of an object key and of a URL path: the part
/// after the last `/` or `\`, every character outside `[A-Za-z0-9._-]` (controls, spaces,
/// quotes, non-ASCII) as `_`, runs of `_` as one, no leading dots (no `..`, no hidden
/// file), at most [`MAX_FILE_NAME`] bytes with the extension kept; [`UNNAMED`] when nothing
/// is left.
pub fn sanitise(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut safe = String::with_capacity(base.len().min(MAX_FILE_NAME));
    for c in base.chars() {
        let c = match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        };
        if !(c == '_' && safe.ends_with('_')) {
            safe.push(c);
        }
    }
    let safe = safe.trim_start_matches(['.', '_']).trim_end_matches('_');
    let safe = match safe.len() > MAX_FILE_NAME {
        false => safe.to_string(),
        true => {
            // Keep a short extension: `…long….pdf` stays a PDF.
            let extension = match safe.rsplit_once('.') {
                Some((_, ext)) if !ext.is_empty() && ext.len() <= 10 => format!(".{ext}"),
                _ => String::new(),
            };
            let stem = &safe[..MAX_FILE_NAME - extension.len()];
            format!("{}{extension}", stem.trim_end_matches(['.', '_']))
        }
    };
    match safe.trim_matches('.').is_empty() {
        true => UNNAMED.to_string(),
        false => safe,
    }
}

/// A store's prefix as given, normalised: no `/` at either end; `None` when empty. `Err`
/// names what is wrong: each segment is `[A-Za-z0-9._-]`, not `.` or `..`, at most 200
/// bytes in all.
pub fn prefix(text: &str) -> Result<Option<String>, String> {
    let trimmed = text.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    let bad_segment = trimmed.split('/').any(|segment| {
        segment.is_empty()
            || segment == "."
            || segment == ".."
            || !segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    });
    if bad_segment || trimmed.len() > 200 {
        return Err(format!(
            "prefix {trimmed:?}: segments of letters, digits, '.', '-' or '_' separated by '/', \
             no '.' or '..', at most 200 characters"
        ));
    }
    Ok(Some(trimmed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_file_names_become_one_safe_segment() {
        for (given, expected) in [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\win.ini", "win.ini"),
            ("..", UNNAMED),
            ("...", UNNAMED),
            ("/", UNNAMED),
            ("", UNNAMED),
            (".htaccess", "htaccess"),
            ("a\r\nContent-Type: text/html\0.txt", "html_.txt"),
            ("a\r\nX-Y: z\u{7f}\t.txt", "a_X-Y_z_.txt"),
            ("Café menu (final).pdf", "Caf_menu_final_.pdf"),
            ("x?y#z%2F..%2Fq&r=s.txt", "x_y_z_2F.._2Fq_r_s.txt"),
            ("\u{202e}fdp.exe", "fdp.exe"),
        ] {
            let safe = sanitise(given);
            assert_eq!(safe, expected, "{given:?}");
        }
        let long = format!("{}.pdf", "a".repeat(5000));
        let safe = sanitise(&long);
        assert_eq!(safe.len(), MAX_FILE_NAME);
        assert!(safe.ends_with(".pdf"));
        let no_extension = "b".repeat(300);
        assert_eq!(sanitise(&no_extension).len(), MAX_FILE_NAME);
    }

    #[test]
    fn every_sanitised_name_is_url_and_path_safe() {
        let hostile = [
            "a/b", "..", "./.", "\\", "%00", "\u{0}", "a b", "<script>", "😀.png", "....txt",
            "._x", "-x",
        ];
        for given in hostile {
            let safe = sanitise(given);
            assert!(!safe.is_empty() && safe != "." && safe != "..", "{given:?}");
            assert!(!safe.starts_with('.'), "{given:?} → {safe:?}");
            assert!(
                safe.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
                "{given:?} → {safe:?}"
            );
        }
    }

    #[test]
    fn attachments_get_a_fresh_random_folder() {
        let (a, b) = (attachment("x.txt"), attachment("x.txt"));
        assert_ne!(a.folder, b.folder);
        assert_eq!(a.folder.as_ref().unwrap().len(), 32);
        assert!(a.key().ends_with("/x.txt"));
    }

    #[test]
    fn messages_are_named_by_their_utc_receive_time_and_md5() {
        let at = time::macros::datetime!(2024-03-05 07:08:09 +02:00);
        let name = message(
            at,
            "0123456789abcdef0123456789abcdef",
            MessageStoreFormat::Raw,
        );
        assert_eq!(
            name.key(),
            "2024_03_05_05_08_09_0123456789abcdef0123456789abcdef.eml"
        );
        let json = message(at, "ff", MessageStoreFormat::Json);
        assert_eq!(json.file, "2024_03_05_05_08_09_ff.json");
    }

    #[test]
    fn prefixes_are_normalised_or_refused() {
        assert_eq!(prefix("/mail/in/").unwrap().as_deref(), Some("mail/in"));
        assert_eq!(prefix("").unwrap(), None);
        for bad in ["a/../b", "a//b", "a b", "x/./y", "é"] {
            assert!(prefix(bad).is_err(), "{bad}");
        }
    }
}

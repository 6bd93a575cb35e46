//! [`Html`]: markup that is safe to put in a page. Only escaping ([`Html::escape`]) or a
//! literal written in our code ([`Html::trusted`], the format string of [`html!`]) can make
//! one, so text that came with the mail, a form, DNS or a sign-in provider cannot become
//! markup by mistake: a page that forgets to escape does not compile.
//!
//! [`html!`] is `format!` for pages: its arguments are rendered through [`Render`], which
//! escapes text (`&str`, `String`), passes `Html` through and prints numbers. Its format
//! string goes through `concat!`, which turns off implicit captures (`{name}` without
//! `name = …`), so every value in a page passes through `Render`.

use std::fmt::{self, Write};

/// Markup, escaped where it came from outside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::web) struct Html(String);

impl Html {
    pub(in crate::web) fn new() -> Html {
        Html(String::new())
    }

    /// The text, escaped for element content and double-quoted attribute values.
    pub(in crate::web) fn escape(text: &str) -> Html {
        let mut html = Html::new();
        html.push(text);
        html
    }

    /// Markup written in our code.
    pub(in crate::web) fn trusted(markup: &'static str) -> Html {
        Html(markup.to_string())
    }

    /// Appends `part`: markup as it is, text escaped.
    pub(in crate::web) fn push(&mut self, part: impl Render) {
        write!(self.0, "{}", Escaped(&part)).expect("writing to a String cannot fail");
    }

    /// Appends markup written in our code.
    pub(in crate::web) fn push_trusted(&mut self, markup: &'static str) {
        self.0.push_str(markup);
    }

    /// The parts one after another, `separator` (markup written in our code) between them.
    pub(in crate::web) fn join(
        parts: impl IntoIterator<Item = Html>,
        separator: &'static str,
    ) -> Html {
        let mut html = Html::new();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                html.push_trusted(separator);
            }
            html.push(part);
        }
        html
    }

    #[cfg(test)]
    pub(in crate::web) fn as_str(&self) -> &str {
        &self.0
    }

    pub(in crate::web) fn into_string(self) -> String {
        self.0
    }

    /// For [`html!`] only: its format string is a literal, its arguments are [`Escaped`].
    #[doc(hidden)]
    pub(in crate::web) fn from_format(args: fmt::Arguments<'_>) -> Html {
        Html(fmt::format(args))
    }
}

impl FromIterator<Html> for Html {
    fn from_iter<I: IntoIterator<Item = Html>>(parts: I) -> Html {
        Html::join(parts, "")
    }
}

/// What may go into a page: markup as it is, text escaped, numbers printed.
pub(in crate::web) trait Render {
    fn render(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl Render for Html {
    fn render(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        out.write_str(&self.0)
    }
}

impl Render for str {
    fn render(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.chars() {
            match c {
                '&' => out.write_str("&amp;")?,
                '<' => out.write_str("&lt;")?,
                '>' => out.write_str("&gt;")?,
                '"' => out.write_str("&quot;")?,
                '\'' => out.write_str("&#39;")?,
                c => out.write_char(c)?,
            }
        }
        Ok(())
    }
}

impl Render for String {
    fn render(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().render(out)
    }
}

impl<T: Render + ?Sized> Render for &T {
    fn render(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).render(out)
    }
}

/// Nothing for `None`.
impl<T: Render> Render for Option<T> {
    fn render(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Some(part) => part.render(out),
            None => Ok(()),
        }
    }
}

/// Numbers print only digits, signs and dots: nothing to escape.
macro_rules! render_numbers {
    ($($kind:ty),*) => {
        $(impl Render for $kind {
            fn render(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(out, "{self}")
            }
        })*
    };
}
render_numbers!(i32, i64, u16, u32, u64, usize);

/// A value rendered for a page, as a `Display` for `format_args!`.
#[doc(hidden)]
pub(in crate::web) struct Escaped<'a, T: ?Sized>(pub(in crate::web) &'a T);

impl<T: Render + ?Sized> fmt::Display for Escaped<'_, T> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.render(out)
    }
}

/// `format!` for pages: `html!("<p>{name}</p>", name = user.email)` escapes the text and
/// keeps `Html` arguments as they are. Arguments are named or positional; the format string
/// is a literal or `concat!` of literals.
macro_rules! html {
    ($format:expr $(,)?) => {
        $crate::web::ui::Html::from_format(format_args!(concat!($format)))
    };
    ($format:expr, $($name:ident = $value:expr),+ $(,)?) => {
        $crate::web::ui::Html::from_format(format_args!(
            concat!($format),
            $($name = $crate::web::ui::Escaped(&$value)),+
        ))
    };
    ($format:expr, $($value:expr),+ $(,)?) => {
        $crate::web::ui::Html::from_format(format_args!(
            concat!($format),
            $($crate::web::ui::Escaped(&$value)),+
        ))
    };
}
pub(in crate::web) use html;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_markup_kept() {
        let text = r#"<a href="x">'&'</a>"#;
        assert_eq!(
            Html::escape(text).as_str(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let bold = html!("<b>{}</b>", "<i>");
        assert_eq!(bold.as_str(), "<b>&lt;i&gt;</b>");
        let page = html!(
            concat!("<p>{bold} ", "{n}{none}</p>"),
            bold = bold,
            n = 7,
            none = None::<Html>,
        );
        assert_eq!(page.as_str(), "<p><b>&lt;i&gt;</b> 7</p>");
        let list = Html::join(["a&", "b"].map(Html::escape), "<br>");
        assert_eq!(list.as_str(), "a&amp;<br>b");
    }
}

//! YAML errors as this project reports them: `file:line: field.path: message`.
//!
//! The parser (serde-saphyr) places every error at the offending value itself, also
//! the errors a field's own deserializer raises (a duration without a unit), so the
//! line needs no correction. Its default rendering appends a source snippet and
//! " at line L, column C"; callers here name the file and the line themselves, so
//! [`message`] gives the message alone and [`line`] the line.

use serde_saphyr::{DefaultMessageFormatter, Localizer, Location, MessageFormatter};
use std::borrow::Cow;

/// The message of `error`, without its location or a source snippet.
pub fn message(error: &serde_saphyr::Error) -> String {
    let mut options = serde_saphyr::RenderOptions::default();
    options.formatter = &Bare;
    options.snippets = serde_saphyr::SnippetMode::Off;
    error.render_with_options(options).trim().to_owned()
}

/// The 1-based line `error` points at, if the parser knows it.
pub fn line(error: &serde_saphyr::Error) -> Option<usize> {
    error
        .location()
        .map(|l| l.line())
        .filter(|&l| l > 0)
        .and_then(|l| usize::try_from(l).ok())
}

/// The default wording, with no location attached.
struct Bare;

impl MessageFormatter for Bare {
    fn localizer(&self) -> &dyn Localizer {
        self
    }

    fn format_message<'a>(&self, error: &'a serde_saphyr::Error) -> Cow<'a, str> {
        DefaultMessageFormatter.format_message(error)
    }
}

impl Localizer for Bare {
    fn attach_location<'b>(&self, base: Cow<'b, str>, _location: Location) -> Cow<'b, str> {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    #[test]
    fn errors_give_their_line_and_a_message_without_location() {
        let error = serde_saphyr::from_str::<Outer>("inner:\n  port: 80\n  host: x\n")
            .expect_err("unknown field");
        assert_eq!(line(&error), Some(3));
        assert!(
            message(&error).starts_with("unknown field `host`"),
            "{error}"
        );
        let error = serde_saphyr::from_str::<Outer>("inner:\n\n  port: eighty\n")
            .expect_err("not a number");
        assert_eq!(line(&error), Some(3));
        assert!(!message(&error).contains("line"), "{}", message(&error));
    }
}

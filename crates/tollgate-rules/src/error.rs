//! [`RulesError`]: one error with the file, line and column it points at.

use std::fmt;
use std::ops::Range;

/// Why a rules file was rejected: it could not be read, it is not valid TOML, or it is valid TOML
/// that does not describe a valid policy.
///
/// `Display` gives one line, `file:line:column: message` (1-based, the column counted in
/// characters), or `file: message` when there is no position (an I/O error). The alternate form
/// (`{:#}`) adds the offending source line with carets under the offending text, as rustc does.
#[derive(Debug)]
pub struct RulesError {
    origin: String,
    message: String,
    location: Option<Location>,
    io: Option<std::io::Error>,
}

/// Where in the source an error points, resolved once so the error does not keep the source.
#[derive(Debug, Clone)]
struct Location {
    line: usize,
    column: usize,
    /// The whole line the error starts on, without its line terminator.
    source_line: String,
    /// How many characters of `source_line` to underline (at least one).
    width: usize,
}

impl RulesError {
    /// An error at byte range `span` of `source`.
    pub(crate) fn at(origin: &str, source: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        RulesError {
            origin: origin.to_owned(),
            message: message.into(),
            location: span.map(|span| Location::resolve(source, span)),
            io: None,
        }
    }

    pub(crate) fn io(origin: &str, error: std::io::Error) -> Self {
        RulesError {
            origin: origin.to_owned(),
            message: format!("cannot read the rules file: {error}"),
            location: None,
            io: Some(error),
        }
    }

    /// The name the source was given (usually its file path).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// 1-based line of the error; `None` when it has no position (I/O errors).
    pub fn line(&self) -> Option<usize> {
        self.location.as_ref().map(|l| l.line)
    }

    /// 1-based column of the error, in characters; `None` when it has no position.
    pub fn column(&self) -> Option<usize> {
        self.location.as_ref().map(|l| l.column)
    }

    /// What is wrong, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The source line the error points at, without its line terminator.
    pub fn source_line(&self) -> Option<&str> {
        self.location.as_ref().map(|l| l.source_line.as_str())
    }

    /// Whether the file could not be read at all (as opposed to having invalid content); the
    /// underlying error is [`std::error::Error::source`].
    pub fn is_io(&self) -> bool {
        self.io.is_some()
    }
}

impl Location {
    fn resolve(source: &str, span: Range<usize>) -> Location {
        let start = floor_char_boundary(source, span.start);
        let end = floor_char_boundary(source, span.end.max(start));
        let before = source.get(..start).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let line_end = source.get(start..).and_then(|rest| rest.find('\n')).map_or(source.len(), |i| start + i);
        let source_line = source.get(line_start..line_end).unwrap_or_default();
        // A span at the `\n` of a CRLF line ends the visible line: do not count the `\r`.
        let column =
            source.get(line_start..start).map_or(0, |prefix| prefix.trim_end_matches('\r').chars().count()) + 1;
        // Underline to the end of the span, but not past the end of the line: a span covering a
        // whole table would otherwise run on.
        let width = source.get(start..end.min(line_end)).map_or(0, |s| s.trim_end_matches('\r').chars().count()).max(1);
        Location { line, column, source_line: source_line.trim_end_matches('\r').to_owned(), width }
    }
}

/// The largest char boundary of `s` at or before `index` (clamped to `s.len()`).
fn floor_char_boundary(s: &str, index: usize) -> usize {
    let mut index = index.min(s.len());
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(location) = &self.location else {
            return write!(f, "{}: {}", self.origin, self.message);
        };
        if !f.alternate() {
            return write!(f, "{}:{}:{}: {}", self.origin, location.line, location.column, self.message);
        }
        let gutter = location.line.to_string().len();
        // Keep the tabs of the source line in the caret line so the carets stay aligned however
        // the terminal expands tabs.
        let pad: String = location
            .source_line
            .chars()
            .take(location.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "{:gutter$}--> {}:{}:{}", "", self.origin, location.line, location.column)?;
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", location.line, location.source_line)?;
        write!(f, "{:gutter$} | {pad}{}", "", "^".repeat(location.width))
    }
}

impl std::error::Error for RulesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

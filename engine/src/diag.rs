//! Errors a person can act on: every problem found in a pipeline is a [`Problem`] pointing at
//! a file, line and column, and all of them are reported at once, rendered by miette with the
//! offending source line, a caret and a label. Exit codes live here too.

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
use std::ops::Range;
use std::sync::Arc;

/// Exit codes, documented in the README.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// A stage failed (or the store did).
    pub const STAGE_FAILED: i32 = 1;
    /// The pipeline or the command line is invalid.
    pub const INVALID: i32 = 2;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: i32 = 130;
}

/// A source file the pipeline was read from.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in messages (the path as given, or `--set NAME`).
    pub name: String,
    /// Its text.
    pub text: Arc<String>,
}

/// Where something was written: a file index into [`Sources`] and a byte span.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loc {
    /// Index into [`Sources`].
    pub file: usize,
    /// Byte range.
    pub span: Range<usize>,
}

#[derive(Debug, Clone, Default)]
/// Every source a pipeline was read from, indexed by [`Loc::file`].
pub struct Sources(pub Vec<SourceFile>);

/// One problem in the pipeline or its command line.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// Where, when it is in a file.
    pub loc: Option<Loc>,
    /// The label under the caret.
    pub label: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Problem {
    /// A problem at a place.
    pub fn at(loc: &Loc, message: impl Into<String>, label: impl Into<String>) -> Self {
        Self { message: message.into(), loc: Some(loc.clone()), label: label.into(), help: None }
    }
    /// A problem with no place (e.g. a bad `--set`).
    pub fn global(message: impl Into<String>) -> Self {
        Self { message: message.into(), loc: None, label: String::new(), help: None }
    }
    /// Adds advice.
    pub fn help(mut self, h: impl Into<String>) -> Self {
        self.help = Some(h.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Rendered {
    message: String,
    src: Option<NamedSource<Arc<String>>>,
    span: Option<SourceSpan>,
    label: String,
    help: Option<String>,
}

impl Diagnostic for Rendered {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_with_span(Some(self.label.clone()), span))))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

/// Renders problems as plain text (no colour), one report after another, then a count line.
pub fn render(problems: &[Problem], sources: &Sources, color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    for p in problems {
        let (src, span) = match &p.loc {
            Some(l) => {
                let f = &sources.0[l.file];
                (
                    Some(NamedSource::new(f.name.clone(), f.text.clone())),
                    Some(SourceSpan::from(l.span.start..l.span.end.max(l.span.start))),
                )
            }
            None => (None, None),
        };
        let r = Rendered { message: p.message.clone(), src, span, label: p.label.clone(), help: p.help.clone() };
        let _ = handler.render_report(&mut out, &r);
        out.push('\n');
    }
    if problems.len() > 1 {
        out.push_str(&format!("{} problems found\n", problems.len()));
    }
    out
}

/// An error of the tool itself (not of a stage): bad pipeline, bad usage, store failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid pipeline")]
    /// Problems in the pipeline, with the sources to render them.
    Invalid(Vec<Problem>, Sources),
    #[error("{0}")]
    /// A bad command line (an unknown stage, a missing file).
    Usage(String),
    #[error("{0}")]
    /// The store or the file system failed.
    Io(String),
}

impl Error {
    /// An I/O failure with its context.
    pub fn io(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        Error::Io(format!("{context}: {e}"))
    }
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(..) | Error::Usage(_) => exit::INVALID,
            Error::Io(_) => exit::STAGE_FAILED,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

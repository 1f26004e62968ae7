//! The error type of the public API.

use crate::protocol::url::UrlError;
use std::fmt;

/// Why an operation of this library failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot name a DDP endpoint.
    InvalidUrl(UrlError),
    /// An option has a value that makes no sense; the text names it.
    InvalidOptions(String),
    /// The browser refused something (the text is the browser's message).
    Browser(String),
    /// The connection was closed with `close()`.
    Closed,
}

impl Error {
    /// A short stable code: "invalid-url", "invalid-options", "browser", "closed".
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidUrl(_) => "invalid-url",
            Error::InvalidOptions(_) => "invalid-options",
            Error::Browser(_) => "browser",
            Error::Closed => "closed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(e) => e.fmt(f),
            Error::InvalidOptions(s) => write!(f, "invalid options: {s}"),
            Error::Browser(s) => write!(f, "browser error: {s}"),
            Error::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for Error {}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::InvalidUrl(e)
    }
}

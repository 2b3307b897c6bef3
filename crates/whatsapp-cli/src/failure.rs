//! How failures reach the user: errors the user can fix (bad usage or set-up) exit with code 2 and one line
//! naming the fix; every other failure exits with code 1.

use std::fmt;
use std::process::ExitCode;

use whatsapp_client::ClientError;
use whatsapp_client::store::StoreError;

/// Exit code of a failed operation (network, server, pairing).
pub(crate) const EXIT_FAILED: u8 = 1;

/// Exit code of bad usage or set-up; clap uses it for its own usage errors too.
pub(crate) const EXIT_USAGE: u8 = 2;

/// A failure the user can fix; its message says how, on one line.
#[derive(Debug)]
pub(crate) struct Fix(pub(crate) String);

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fix {}

/// A user-fixable failure, as an `anyhow` error.
pub(crate) fn fix(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fix(message.into()))
}

/// Turns the client errors that have a known fix into [`Fix`]es; others pass through with `context`.
pub(crate) fn client_error(error: ClientError, context: &str) -> anyhow::Error {
    match error {
        ClientError::Store(StoreError::LeaseHeld { .. }) => fix(
            "the account is in use by another wa process (wa listen?); stop it, or wait a minute if it crashed",
        ),
        ClientError::LoggedOut => fix("this device was logged out; run `wa login` to link it again"),
        other => anyhow::Error::new(other).context(context.to_owned()),
    }
}

/// Prints `error` and gives its exit code.
pub(crate) fn report(error: &anyhow::Error) -> ExitCode {
    if let Some(fix) = error.downcast_ref::<Fix>() {
        // One line, whatever the underlying error's text holds.
        eprintln!("error: {}", fix.0.replace(['\n', '\r'], " "));
        return ExitCode::from(EXIT_USAGE);
    }
    // `{:#}` prints the whole chain of causes on one line.
    eprintln!("error: {error:#}");
    ExitCode::from(EXIT_FAILED)
}

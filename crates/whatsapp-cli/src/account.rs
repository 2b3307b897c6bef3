//! The linked device of a database: opening the store, finding the device, building a client for it, and
//! connecting until the server accepted the login.

use std::time::Duration;

use anyhow::Context as _;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::{AccountId, AccountStore as _, Backend as _};
use whatsapp_client::{Client, ClientBuilder, Event, Events, Jid, TrustRoot};

use crate::cli::Global;
use crate::failure::{client_error, fix};
use crate::login::phone_number;

/// How long connecting and logging in may take before a one-shot command gives up.
pub(crate) const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A client of the SQL store.
pub(crate) type SqlClient = Client<SqlBackend>;

/// Opens the database named by `--database`: a URL with a scheme, or else a SQLite file path.
pub(crate) async fn open_store(database: &str) -> anyhow::Result<SqlBackend> {
    let is_url = ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|scheme| database.starts_with(scheme));
    let opened = if is_url {
        SqlBackend::connect(database).await
    } else {
        SqlBackend::open_sqlite(database).await
    };
    opened.map_err(|error| {
        fix(format!(
            "cannot open the database {} ({error}); pass --database with a writable SQLite path or a reachable postgres:// URL",
            without_password(database)
        ))
    })
}

/// A database URL with its password, if any, masked, for messages.
pub(crate) fn without_password(database: &str) -> String {
    let Some((scheme, rest)) = database.split_once("://") else {
        return database.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return database.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => database.to_owned(),
    }
}

/// Every linked (paired) device of the store, with its account.
pub(crate) async fn linked_accounts(store: &SqlBackend) -> anyhow::Result<Vec<(AccountId, Jid)>> {
    let mut linked = Vec::new();
    for id in store.accounts().await.context("reading the accounts")? {
        let device = store
            .open_account(id)
            .await
            .context("opening an account")?
            .device()
            .await
            .context("reading a device")?;
        if let Some(jid) = &device.jid {
            linked.push((id, jid.clone()));
        }
    }
    Ok(linked)
}

/// The linked device `--account` names, or the only one; `None` when there is none. Several devices without
/// `--account` is an error listing them.
pub(crate) async fn linked_account(
    store: &SqlBackend,
    global: &Global,
) -> anyhow::Result<Option<(AccountId, Jid)>> {
    let linked = linked_accounts(store).await?;
    if let Some(number) = &global.account {
        let number = phone_number(number)?;
        return Ok(linked.into_iter().find(|(_, jid)| jid.user() == number));
    }
    if linked.len() > 1 {
        let numbers: Vec<&str> = linked.iter().map(|(_, jid)| jid.user()).collect();
        return Err(fix(format!(
            "the database has {} linked devices ({}); choose one with --account NUMBER",
            linked.len(),
            numbers.join(", ")
        )));
    }
    Ok(linked.into_iter().next())
}

/// A client builder on `store`, pointed at the test server when `--server` and `--root` say so.
pub(crate) fn builder(store: SqlBackend, global: &Global) -> anyhow::Result<ClientBuilder<SqlBackend>> {
    let builder = Client::builder(store);
    match (&global.server, &global.root) {
        (Some(url), Some(root)) => Ok(builder.server(url.clone(), trust_root(root)?)),
        (None, None) => Ok(builder),
        // clap enforces that the two come together.
        _ => Err(fix("--server and --root go together")),
    }
}

/// A trust root from 64 hex digits.
fn trust_root(hex_key: &str) -> anyhow::Result<TrustRoot> {
    let bytes = hex::decode(hex_key.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            fix(format!(
                "--root {hex_key} is not a 32-byte key; give the 64 hex digits the test server prints"
            ))
        })?;
    Ok(TrustRoot::custom(whatsapp_signal::PublicKey::from_bytes(bytes)))
}

/// Builds a client for the database's linked device; fails with the fix when there is none.
pub(crate) async fn linked_client(
    global: &Global,
    auto_reconnect: bool,
) -> anyhow::Result<(SqlClient, Events, Jid)> {
    let store = open_store(&global.database).await?;
    let (id, jid) = linked_account(&store, global).await?.ok_or_else(|| {
        fix(format!(
            "not logged in: {} has no linked device; run `wa login` first",
            without_password(&global.database)
        ))
    })?;
    let (client, events) = builder(store, global)?
        .account(id)
        .auto_reconnect(auto_reconnect)
        .build()
        .await
        .map_err(|error| client_error(error, "opening the device"))?;
    Ok((client, events, jid))
}

/// Connects and waits until the server accepted the login. Events before that (offline notifications) are
/// skipped; an event that means the device cannot log in is an error naming what to do.
pub(crate) async fn connect_logged_in(client: &SqlClient, events: &mut Events) -> anyhow::Result<()> {
    client
        .connect()
        .await
        .map_err(|error| client_error(error, "connecting"))?;
    let waited = tokio::time::timeout(LOGIN_TIMEOUT, async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Connected => return Ok(()),
                Event::Qr { .. } => {
                    return Err(fix("this device is not linked; run `wa login` first"));
                }
                Event::Disconnected => {
                    anyhow::bail!("the connection was lost before the login finished; try again");
                }
                other => {
                    if let Some(error) = stopping_error(&other) {
                        return Err(error);
                    }
                }
            }
        }
        Err(anyhow::anyhow!("the client stopped before logging in"))
    })
    .await;
    let result = waited.unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "not logged in within {} s; check the network (RUST_LOG=whatsapp_client=debug shows the steps)",
            LOGIN_TIMEOUT.as_secs()
        ))
    });
    if result.is_err() {
        // Stops the connection task and gives the account's lease back.
        client.disconnect().await;
    }
    result
}

/// The error of an event after which the client stops, if `event` is one.
pub(crate) fn stopping_error(event: &Event) -> Option<anyhow::Error> {
    Some(match event {
        Event::LoggedOut { code, .. } => fix(format!(
            "this device was unlinked (code {code}) and removed from the database; run `wa login` to link again"
        )),
        Event::ClientOutdated => anyhow::anyhow!(
            "the server refused this client version as outdated (405); update wa to a newer release"
        ),
        Event::TemporaryBan { reason, expire } => anyhow::anyhow!(
            "the account is temporarily banned ({reason:?}) for another {} s",
            expire.as_secs()
        ),
        Event::StreamReplaced => {
            anyhow::anyhow!("another connection of this device took over; only one may run at a time")
        }
        Event::LeaseLost => anyhow::anyhow!("another process took over this account in the database"),
        _ => return None,
    })
}

/// Runs `job` until it ends or the user presses Ctrl-C; the caller disconnects either way, so that the
/// account's lease is free at once for the next command.
pub(crate) async fn interruptible<T>(job: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::select! {
        result = job => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        for (url, shown) in [
            (
                "postgres://wa:secret@db.example/wa",
                "postgres://wa:***@db.example/wa",
            ),
            ("postgres://wa:p@ss@db/wa?x=a@b", "postgres://wa:***@db/wa?x=a@b"),
            ("postgres://wa@db/wa", "postgres://wa@db/wa"),
            ("postgres://db/wa", "postgres://db/wa"),
            ("./whatsapp.db", "./whatsapp.db"),
            ("sqlite:/tmp/a@b.db", "sqlite:/tmp/a@b.db"),
        ] {
            assert_eq!(without_password(url), shown, "{url}");
        }
    }
}

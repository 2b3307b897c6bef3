//! The SQL of every operation, written once with `$n` placeholders (accepted by both SQLite and PostgreSQL)
//! and generic over the connection, so that an account handle and a transaction share it.

use std::collections::BTreeMap;
use std::fmt::Display;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, TryGetable, Value};
use whatsapp_store::{
    AccountId, AppStateSyncKey, AppStateVersion, BufferedEvent, ChatSettings, Contact, ContactName, Device,
    KeyPairBytes, MessageSecret, MutationMac, PreKey, PrivacyToken, Result, SignedPreKey, StoreError,
};

/// Rows per multi-row statement. Keeps every statement under SQLite's 32,766 bound variables and PostgreSQL's
/// 65,535 with up to 6 columns a row, while making a 1,000-session batch 2 round trips.
pub(crate) const BATCH_ROWS: usize = 500;

pub(crate) fn db_err(e: DbErr) -> StoreError {
    StoreError::Backend(Box::new(e))
}

pub(crate) fn corrupt(table: &'static str, key: impl Display, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// `$from, $from+1, ...` for `n` placeholders.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row being decoded: every failure names the table and key.
pub(crate) struct Row<'a, K: Display> {
    pub(crate) row: &'a QueryResult,
    pub(crate) table: &'static str,
    pub(crate) key: K,
}

impl<K: Display> Row<'_, K> {
    pub(crate) fn get<T: TryGetable>(&self, col: &str) -> Result<T> {
        self.row
            .try_get("", col)
            .map_err(|e| corrupt(self.table, &self.key, format!("column {col}: {e}")))
    }

    pub(crate) fn array<const N: usize>(&self, col: &str) -> Result<[u8; N]> {
        let bytes: Vec<u8> = self.get(col)?;
        <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
            corrupt(
                self.table,
                &self.key,
                format!("column {col}: {} bytes, expected {N}", bytes.len()),
            )
        })
    }

    pub(crate) fn int<T: TryFrom<i64>>(&self, col: &str) -> Result<T> {
        let v: i64 = self.get(col)?;
        T::try_from(v).map_err(|_| corrupt(self.table, &self.key, format!("column {col}: {v} out of range")))
    }
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v)
        .map_err(|_| StoreError::InvalidArgument(format!("{what} {v} exceeds the SQL integer range")))
}

pub(crate) async fn exec<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Result<u64> {
    c.execute_raw(stmt(c.get_database_backend(), sql, values))
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err)
}

pub(crate) async fn one<C: ConnectionTrait>(
    c: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<QueryResult>> {
    c.query_one_raw(stmt(c.get_database_backend(), sql, values))
        .await
        .map_err(db_err)
}

pub(crate) async fn all<C: ConnectionTrait>(
    c: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>> {
    c.query_all_raw(stmt(c.get_database_backend(), sql, values))
        .await
        .map_err(db_err)
}

/// Keeps the last occurrence of each key: one multi-row upsert may not touch a row twice (PostgreSQL).
fn last_wins<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        seen.insert(key(item), i);
    }
    let mut idx: Vec<usize> = seen.into_values().collect();
    idx.sort_unstable();
    idx.into_iter().filter_map(|i| items.get(i)).collect()
}

/// Runs a multi-row upsert in chunks: `head` is `INSERT INTO t (cols) VALUES`, `tail` the `ON CONFLICT` clause.
async fn upsert_rows<C: ConnectionTrait>(
    c: &C,
    head: &str,
    tail: &str,
    cols: usize,
    rows: Vec<Vec<Value>>,
) -> Result<()> {
    for chunk in rows.chunks(BATCH_ROWS) {
        let groups: Vec<String> = (0..chunk.len())
            .map(|r| format!("({})", placeholders(1 + r * cols, cols)))
            .collect();
        let sql = format!("{head} {} {tail}", groups.join(", "));
        exec(c, &sql, chunk.iter().flatten().cloned().collect()).await?;
    }
    Ok(())
}

// --- Device ---

pub(crate) fn device_values(d: &Device) -> Vec<Value> {
    vec![
        d.noise_key.public.to_vec().into(),
        d.noise_key.private.to_vec().into(),
        d.identity_key.public.to_vec().into(),
        d.identity_key.private.to_vec().into(),
        i64::from(d.registration_id).into(),
        i64::from(d.signed_prekey.id).into(),
        d.signed_prekey.key_pair.public.to_vec().into(),
        d.signed_prekey.key_pair.private.to_vec().into(),
        d.signed_prekey.signature.to_vec().into(),
        d.adv_secret.to_vec().into(),
        d.jid.as_ref().map(|j| j.to_string()).into(),
        d.lid.as_ref().map(|j| j.to_string()).into(),
        d.account_identity.clone().into(),
        d.platform.clone().into(),
        d.business_name.clone().into(),
        d.push_name.clone().into(),
    ]
}

pub(crate) const DEVICE_COLUMNS: &str = "noise_pub, noise_priv, identity_pub, identity_priv, registration_id, \
    signed_prekey_id, signed_prekey_pub, signed_prekey_priv, signed_prekey_sig, adv_secret, jid, lid, \
    account_identity, platform, business_name, push_name";

pub(crate) async fn device<C: ConnectionTrait>(c: &C, account: AccountId) -> Result<Device> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM wa_account WHERE id = $1");
    let row = one(c, &sql, vec![account.0.into()])
        .await?
        .ok_or(StoreError::AccountNotFound(account))?;
    let r = Row {
        row: &row,
        table: "wa_account",
        key: account,
    };
    let pair = |p: &str, s: &str| -> Result<KeyPairBytes> {
        Ok(KeyPairBytes {
            public: r.array(p)?,
            private: r.array(s)?,
        })
    };
    let jid = |col: &str| -> Result<Option<whatsapp_binary::Jid>> {
        let text: Option<String> = r.get(col)?;
        text.map(|t| {
            t.parse()
                .map_err(|e| corrupt("wa_account", account, format!("column {col}: {e}")))
        })
        .transpose()
    };
    Ok(Device {
        noise_key: pair("noise_pub", "noise_priv")?,
        identity_key: pair("identity_pub", "identity_priv")?,
        registration_id: r.int("registration_id")?,
        signed_prekey: SignedPreKey {
            id: r.int("signed_prekey_id")?,
            key_pair: pair("signed_prekey_pub", "signed_prekey_priv")?,
            signature: r.array("signed_prekey_sig")?,
        },
        adv_secret: r.array("adv_secret")?,
        jid: jid("jid")?,
        lid: jid("lid")?,
        account_identity: r.get("account_identity")?,
        platform: r.get("platform")?,
        business_name: r.get("business_name")?,
        push_name: r.get("push_name")?,
    })
}

pub(crate) async fn put_device<C: ConnectionTrait>(c: &C, account: AccountId, d: &Device) -> Result<()> {
    let sets: Vec<String> = DEVICE_COLUMNS
        .split(", ")
        .enumerate()
        .map(|(i, col)| format!("{col} = ${}", i + 2))
        .collect();
    let sql = format!("UPDATE wa_account SET {} WHERE id = $1", sets.join(", "));
    let mut values = vec![account.0.into()];
    values.extend(device_values(d));
    match exec(c, &sql, values).await? {
        0 => Err(StoreError::AccountNotFound(account)),
        _ => Ok(()),
    }
}

// --- Identities and sessions ---

pub(crate) async fn put_identity<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    address: &str,
    key: &[u8; 32],
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_identity (account, address, identity_key) VALUES ($1, $2, $3) \
         ON CONFLICT (account, address) DO UPDATE SET identity_key = excluded.identity_key",
        vec![account.0.into(), address.into(), key.to_vec().into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn identity<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    address: &str,
) -> Result<Option<[u8; 32]>> {
    let row = one(
        c,
        "SELECT identity_key FROM wa_identity WHERE account = $1 AND address = $2",
        vec![account.0.into(), address.into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_identity",
            key: format!("account {account}, address {address}"),
        }
        .array("identity_key")
    })
    .transpose()
}

pub(crate) async fn delete_identity<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    address: &str,
) -> Result<()> {
    exec(
        c,
        "DELETE FROM wa_identity WHERE account = $1 AND address = $2",
        vec![account.0.into(), address.into()],
    )
    .await
    .map(drop)
}

/// Deletes the rows of `table` whose address is `user:*`. The prefix is compared with `substr` rather than
/// `LIKE`, since `_` (the agent separator) is a `LIKE` wildcard.
/// The prefix `user:` and its length in characters, for `substr(column, 1, len) = prefix` (no `LIKE`, whose `_`
/// would match any character in a LID address such as `123_1:0`).
fn user_prefix(user: &str) -> Result<(String, i32)> {
    let prefix = format!("{user}:");
    let len = i32::try_from(prefix.chars().count())
        .map_err(|_| StoreError::InvalidArgument("user too long".into()))?;
    Ok((prefix, len))
}

/// The rows of `table` whose `column` names a device of `user` (`user:*`), each read by `read`, ordered by the
/// first two selected columns.
async fn user_rows<C: ConnectionTrait, T>(
    c: &C,
    account: AccountId,
    user: &str,
    (table, column, select): (&'static str, &str, &str),
    read: impl Fn(&Row<'_, String>) -> Result<T>,
) -> Result<Vec<T>> {
    let (prefix, len) = user_prefix(user)?;
    let sql = format!(
        "SELECT {select} FROM {table} WHERE account = $1 AND substr({column}, 1, $3) = $2 ORDER BY 1, 2"
    );
    let rows = all(c, &sql, vec![account.0.into(), prefix.into(), len.into()]).await?;
    rows.iter()
        .map(|row| {
            read(&Row {
                row,
                table,
                key: format!("account {account}, user {user}"),
            })
        })
        .collect()
}

/// The identities of every device of `user`, by address.
pub(crate) async fn user_identities<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    user: &str,
) -> Result<Vec<(String, [u8; 32])>> {
    let spec = ("wa_identity", "address", "address, identity_key");
    user_rows(c, account, user, spec, |r| {
        Ok((r.get("address")?, r.array("identity_key")?))
    })
    .await
}

/// The sessions with every device of `user`, by address.
pub(crate) async fn user_sessions<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    user: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let spec = ("wa_session", "address", "address, session");
    user_rows(c, account, user, spec, |r| {
        Ok((r.get("address")?, r.get("session")?))
    })
    .await
}

/// The sender keys of every device of `user` in every group, as (group, sender, record).
pub(crate) async fn user_sender_keys<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    user: &str,
) -> Result<Vec<(String, String, Vec<u8>)>> {
    let spec = ("wa_sender_key", "sender", "group_id, sender, record");
    user_rows(c, account, user, spec, |r| {
        Ok((r.get("group_id")?, r.get("sender")?, r.get("record")?))
    })
    .await
}

pub(crate) async fn delete_user<C: ConnectionTrait>(
    c: &C,
    table: &str,
    account: AccountId,
    user: &str,
) -> Result<u64> {
    let (prefix, len) = user_prefix(user)?;
    let sql = format!("DELETE FROM {table} WHERE account = $1 AND substr(address, 1, $3) = $2");
    exec(c, &sql, vec![account.0.into(), prefix.into(), len.into()]).await
}

pub(crate) async fn put_session<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    address: &str,
    session: &[u8],
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_session (account, address, session) VALUES ($1, $2, $3) \
         ON CONFLICT (account, address) DO UPDATE SET session = excluded.session",
        vec![account.0.into(), address.into(), session.to_vec().into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn put_sessions<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    sessions: &[(String, Vec<u8>)],
) -> Result<()> {
    let rows = last_wins(sessions, |(a, _)| a.clone())
        .into_iter()
        .map(|(a, s)| vec![account.0.into(), a.clone().into(), s.clone().into()])
        .collect();
    upsert_rows(
        c,
        "INSERT INTO wa_session (account, address, session) VALUES",
        "ON CONFLICT (account, address) DO UPDATE SET session = excluded.session",
        3,
        rows,
    )
    .await
}

pub(crate) async fn session<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    address: &str,
) -> Result<Option<Vec<u8>>> {
    let row = one(
        c,
        "SELECT session FROM wa_session WHERE account = $1 AND address = $2",
        vec![account.0.into(), address.into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_session",
            key: format!("account {account}, address {address}"),
        }
        .get("session")
    })
    .transpose()
}

pub(crate) async fn sessions<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    addresses: &[String],
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for chunk in addresses.chunks(BATCH_ROWS) {
        let sql = format!(
            "SELECT address, session FROM wa_session WHERE account = $1 AND address IN ({})",
            placeholders(2, chunk.len())
        );
        let mut values: Vec<Value> = vec![account.0.into()];
        values.extend(chunk.iter().map(|a| Value::from(a.clone())));
        for row in all(c, &sql, values).await? {
            let r = Row {
                row: &row,
                table: "wa_session",
                key: format!("account {account}"),
            };
            let address: String = r.get("address")?;
            let r = Row {
                key: format!("account {account}, address {address}"),
                ..r
            };
            out.insert(address, r.get("session")?);
        }
    }
    Ok(out)
}

pub(crate) async fn delete_session<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    address: &str,
) -> Result<()> {
    exec(
        c,
        "DELETE FROM wa_session WHERE account = $1 AND address = $2",
        vec![account.0.into(), address.into()],
    )
    .await
    .map(drop)
}

// --- Prekeys ---

pub(crate) async fn reserve_prekeys<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    count: u32,
) -> Result<u64> {
    let row = one(
        c,
        "UPDATE wa_account SET prekeys_reserved = prekeys_reserved + $2 WHERE id = $1 RETURNING prekeys_reserved",
        vec![account.0.into(), i64::from(count).into()],
    )
    .await?
    .ok_or(StoreError::AccountNotFound(account))?;
    let end: u64 = Row {
        row: &row,
        table: "wa_account",
        key: account,
    }
    .int("prekeys_reserved")?;
    Ok(end.saturating_sub(u64::from(count)))
}

pub(crate) async fn put_prekeys<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    prekeys: &[PreKey],
) -> Result<()> {
    let rows = last_wins(prekeys, |p| p.id)
        .into_iter()
        .map(|p| {
            vec![
                account.0.into(),
                i64::from(p.id).into(),
                p.key_pair.public.to_vec().into(),
                p.key_pair.private.to_vec().into(),
                p.uploaded.into(),
            ]
        })
        .collect();
    upsert_rows(
        c,
        "INSERT INTO wa_prekey (account, key_id, public_key, private_key, uploaded) VALUES",
        "ON CONFLICT (account, key_id) DO UPDATE SET public_key = excluded.public_key, \
         private_key = excluded.private_key, uploaded = excluded.uploaded",
        5,
        rows,
    )
    .await
}

fn prekey_row(row: &QueryResult, account: AccountId) -> Result<PreKey> {
    let r = Row {
        row,
        table: "wa_prekey",
        key: format!("account {account}"),
    };
    let id: u32 = r.int("key_id")?;
    let r = Row {
        key: format!("account {account}, key_id {id}"),
        ..r
    };
    Ok(PreKey {
        id,
        key_pair: KeyPairBytes {
            public: r.array("public_key")?,
            private: r.array("private_key")?,
        },
        uploaded: r.get("uploaded")?,
    })
}

pub(crate) async fn prekey<C: ConnectionTrait>(c: &C, account: AccountId, id: u32) -> Result<Option<PreKey>> {
    let row = one(
        c,
        "SELECT key_id, public_key, private_key, uploaded FROM wa_prekey WHERE account = $1 AND key_id = $2",
        vec![account.0.into(), i64::from(id).into()],
    )
    .await?;
    row.map(|row| prekey_row(&row, account)).transpose()
}

pub(crate) async fn pending_prekeys<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    limit: u32,
) -> Result<Vec<PreKey>> {
    let rows = all(
        c,
        "SELECT key_id, public_key, private_key, uploaded FROM wa_prekey WHERE account = $1 AND uploaded = $2 \
         ORDER BY key_id LIMIT $3",
        vec![account.0.into(), false.into(), i64::from(limit).into()],
    )
    .await?;
    rows.iter().map(|row| prekey_row(row, account)).collect()
}

pub(crate) async fn remove_prekey<C: ConnectionTrait>(c: &C, account: AccountId, id: u32) -> Result<()> {
    exec(
        c,
        "DELETE FROM wa_prekey WHERE account = $1 AND key_id = $2",
        vec![account.0.into(), i64::from(id).into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn mark_uploaded<C: ConnectionTrait>(c: &C, account: AccountId, ids: &[u32]) -> Result<()> {
    for chunk in ids.chunks(BATCH_ROWS) {
        let sql = format!(
            "UPDATE wa_prekey SET uploaded = $2 WHERE account = $1 AND key_id IN ({})",
            placeholders(3, chunk.len())
        );
        let mut values: Vec<Value> = vec![account.0.into(), true.into()];
        values.extend(chunk.iter().map(|id| Value::from(i64::from(*id))));
        exec(c, &sql, values).await?;
    }
    Ok(())
}

pub(crate) async fn uploaded_count<C: ConnectionTrait>(c: &C, account: AccountId) -> Result<u64> {
    let row = one(
        c,
        "SELECT COUNT(*) AS n FROM wa_prekey WHERE account = $1 AND uploaded = $2",
        vec![account.0.into(), true.into()],
    )
    .await?;
    match row {
        Some(row) => Row {
            row: &row,
            table: "wa_prekey",
            key: account,
        }
        .int("n"),
        None => Ok(0),
    }
}

// --- Sender keys ---

pub(crate) async fn put_sender_key<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    group: &str,
    sender: &str,
    record: &[u8],
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_sender_key (account, group_id, sender, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (account, group_id, sender) DO UPDATE SET record = excluded.record",
        vec![
            account.0.into(),
            group.into(),
            sender.into(),
            record.to_vec().into(),
        ],
    )
    .await
    .map(drop)
}

pub(crate) async fn sender_key<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    group: &str,
    sender: &str,
) -> Result<Option<Vec<u8>>> {
    let row = one(
        c,
        "SELECT record FROM wa_sender_key WHERE account = $1 AND group_id = $2 AND sender = $3",
        vec![account.0.into(), group.into(), sender.into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_sender_key",
            key: format!("account {account}, group {group}, sender {sender}"),
        }
        .get("record")
    })
    .transpose()
}

pub(crate) async fn delete_sender_key<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    group: &str,
    sender: &str,
) -> Result<()> {
    exec(
        c,
        "DELETE FROM wa_sender_key WHERE account = $1 AND group_id = $2 AND sender = $3",
        vec![account.0.into(), group.into(), sender.into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn sender_key_recipients<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    group: &str,
) -> Result<Vec<String>> {
    all(
        c,
        "SELECT device FROM wa_sender_key_recipient WHERE account = $1 AND group_id = $2 ORDER BY device",
        vec![account.0.into(), group.into()],
    )
    .await?
    .iter()
    .map(|row| {
        Row {
            row,
            table: "wa_sender_key_recipient",
            key: format!("account {account}, group {group}"),
        }
        .get("device")
    })
    .collect()
}

pub(crate) async fn add_sender_key_recipients<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    group: &str,
    devices: &[String],
) -> Result<()> {
    let unique: std::collections::BTreeSet<&String> = devices.iter().collect();
    let rows = unique
        .into_iter()
        .map(|device| vec![account.0.into(), group.into(), device.clone().into()])
        .collect();
    upsert_rows(
        c,
        "INSERT INTO wa_sender_key_recipient (account, group_id, device) VALUES",
        "ON CONFLICT (account, group_id, device) DO NOTHING",
        3,
        rows,
    )
    .await
}

pub(crate) async fn clear_sender_key_recipients<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    group: &str,
) -> Result<()> {
    exec(
        c,
        "DELETE FROM wa_sender_key_recipient WHERE account = $1 AND group_id = $2",
        vec![account.0.into(), group.into()],
    )
    .await
    .map(drop)
}

// --- App state ---

pub(crate) async fn put_app_state_sync_key<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    k: &AppStateSyncKey,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_app_state_sync_key (account, key_id, key_data, fingerprint, key_timestamp) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account, key_id) DO UPDATE SET key_data = excluded.key_data, \
         fingerprint = excluded.fingerprint, key_timestamp = excluded.key_timestamp",
        vec![account.0.into(), k.id.clone().into(), k.data.clone().into(), k.fingerprint.clone().into(), k.timestamp.into()],
    )
    .await
    .map(drop)
}

const APP_KEY_COLUMNS: &str = "key_id, key_data, fingerprint, key_timestamp";

fn app_key_row(row: &QueryResult, account: AccountId) -> Result<AppStateSyncKey> {
    let r = Row {
        row,
        table: "wa_app_state_sync_key",
        key: format!("account {account}"),
    };
    Ok(AppStateSyncKey {
        id: r.get("key_id")?,
        data: r.get("key_data")?,
        fingerprint: r.get("fingerprint")?,
        timestamp: r.get("key_timestamp")?,
    })
}

pub(crate) async fn app_state_sync_key<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    id: &[u8],
) -> Result<Option<AppStateSyncKey>> {
    let sql =
        format!("SELECT {APP_KEY_COLUMNS} FROM wa_app_state_sync_key WHERE account = $1 AND key_id = $2");
    let row = one(c, &sql, vec![account.0.into(), id.to_vec().into()]).await?;
    row.map(|row| app_key_row(&row, account)).transpose()
}

pub(crate) async fn latest_app_state_sync_key_id<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
) -> Result<Option<Vec<u8>>> {
    let row = one(
        c,
        "SELECT key_id FROM wa_app_state_sync_key WHERE account = $1 ORDER BY key_timestamp DESC, key_id DESC LIMIT 1",
        vec![account.0.into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_app_state_sync_key",
            key: account,
        }
        .get("key_id")
    })
    .transpose()
}

pub(crate) async fn app_state_sync_keys<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
) -> Result<Vec<AppStateSyncKey>> {
    let sql = format!(
        "SELECT {APP_KEY_COLUMNS} FROM wa_app_state_sync_key WHERE account = $1 ORDER BY key_timestamp, key_id"
    );
    all(c, &sql, vec![account.0.into()])
        .await?
        .iter()
        .map(|row| app_key_row(row, account))
        .collect()
}

pub(crate) async fn put_app_state_version<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    name: &str,
    v: &AppStateVersion,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_app_state_version (account, name, version, hash) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (account, name) DO UPDATE SET version = excluded.version, hash = excluded.hash",
        vec![
            account.0.into(),
            name.into(),
            to_i64(v.version, "app-state version")?.into(),
            v.hash.to_vec().into(),
        ],
    )
    .await
    .map(drop)
}

pub(crate) async fn app_state_version<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    name: &str,
) -> Result<Option<AppStateVersion>> {
    let row = one(
        c,
        "SELECT version, hash FROM wa_app_state_version WHERE account = $1 AND name = $2",
        vec![account.0.into(), name.into()],
    )
    .await?;
    row.map(|row| {
        let r = Row {
            row: &row,
            table: "wa_app_state_version",
            key: format!("account {account}, name {name}"),
        };
        Ok(AppStateVersion {
            version: r.int("version")?,
            hash: r.array("hash")?,
        })
    })
    .transpose()
}

pub(crate) async fn delete_app_state_version<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    name: &str,
) -> Result<()> {
    let values = || vec![Value::from(account.0), Value::from(name)];
    exec(
        c,
        "DELETE FROM wa_app_state_mutation_mac WHERE account = $1 AND name = $2",
        values(),
    )
    .await?;
    exec(
        c,
        "DELETE FROM wa_app_state_version WHERE account = $1 AND name = $2",
        values(),
    )
    .await
    .map(drop)
}

pub(crate) async fn put_mutation_macs<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    name: &str,
    version: u64,
    macs: &[MutationMac],
) -> Result<()> {
    let version = to_i64(version, "app-state version")?;
    let rows = last_wins(macs, |m| m.index_mac)
        .into_iter()
        .map(|m| {
            vec![
                account.0.into(),
                name.into(),
                m.index_mac.to_vec().into(),
                version.into(),
                m.value_mac.to_vec().into(),
            ]
        })
        .collect();
    upsert_rows(
        c,
        "INSERT INTO wa_app_state_mutation_mac (account, name, index_mac, version, value_mac) VALUES",
        "ON CONFLICT (account, name, index_mac) DO UPDATE SET version = excluded.version, value_mac = excluded.value_mac",
        5,
        rows,
    )
    .await
}

pub(crate) async fn delete_mutation_macs<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    name: &str,
    index_macs: &[[u8; 32]],
) -> Result<()> {
    for chunk in index_macs.chunks(BATCH_ROWS) {
        let sql = format!(
            "DELETE FROM wa_app_state_mutation_mac WHERE account = $1 AND name = $2 AND index_mac IN ({})",
            placeholders(3, chunk.len())
        );
        let mut values: Vec<Value> = vec![account.0.into(), name.into()];
        values.extend(chunk.iter().map(|m| Value::from(m.to_vec())));
        exec(c, &sql, values).await?;
    }
    Ok(())
}

pub(crate) async fn mutation_mac<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    name: &str,
    index_mac: &[u8; 32],
) -> Result<Option<[u8; 32]>> {
    let row = one(
        c,
        "SELECT value_mac FROM wa_app_state_mutation_mac WHERE account = $1 AND name = $2 AND index_mac = $3",
        vec![account.0.into(), name.into(), index_mac.to_vec().into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_app_state_mutation_mac",
            key: format!("account {account}, name {name}"),
        }
        .array("value_mac")
    })
    .transpose()
}

// --- Event buffers ---

pub(crate) async fn put_buffered_event<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    hash: &[u8; 32],
    e: &BufferedEvent,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_event_buffer (account, ciphertext_hash, plaintext, server_timestamp, insert_time) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account, ciphertext_hash) DO UPDATE SET \
         plaintext = excluded.plaintext, server_timestamp = excluded.server_timestamp, insert_time = excluded.insert_time",
        vec![account.0.into(), hash.to_vec().into(), e.plaintext.clone().into(), e.server_timestamp.into(), e.insert_time.into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn buffered_event<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    hash: &[u8; 32],
) -> Result<Option<BufferedEvent>> {
    let row = one(
        c,
        "SELECT plaintext, server_timestamp, insert_time FROM wa_event_buffer WHERE account = $1 AND ciphertext_hash = $2",
        vec![account.0.into(), hash.to_vec().into()],
    )
    .await?;
    row.map(|row| {
        let r = Row {
            row: &row,
            table: "wa_event_buffer",
            key: format!("account {account}"),
        };
        Ok(BufferedEvent {
            plaintext: r.get("plaintext")?,
            server_timestamp: r.get("server_timestamp")?,
            insert_time: r.get("insert_time")?,
        })
    })
    .transpose()
}

/// One `UPDATE` per [`BATCH_ROWS`] hashes (none for an empty list): the client clears the messages it handled in
/// batches, folded into its next transaction or written when it goes idle.
pub(crate) async fn clear_buffered_plaintexts<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    hashes: &[[u8; 32]],
) -> Result<()> {
    for chunk in hashes.chunks(BATCH_ROWS) {
        let sql = format!(
            "UPDATE wa_event_buffer SET plaintext = NULL WHERE account = $1 AND ciphertext_hash IN ({})",
            placeholders(2, chunk.len())
        );
        let mut values: Vec<Value> = vec![account.0.into()];
        values.extend(chunk.iter().map(|h| Value::from(h.to_vec())));
        exec(c, &sql, values).await?;
    }
    Ok(())
}

pub(crate) async fn delete_old<C: ConnectionTrait>(
    c: &C,
    table: &str,
    account: AccountId,
    cutoff: i64,
) -> Result<u64> {
    let sql = format!("DELETE FROM {table} WHERE account = $1 AND insert_time < $2");
    exec(c, &sql, vec![account.0.into(), cutoff.into()]).await
}

pub(crate) async fn put_outgoing_event<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    chat: &str,
    id: &str,
    plaintext: &[u8],
    now: i64,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_outgoing_event (account, chat, message_id, plaintext, insert_time) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (account, chat, message_id) DO UPDATE SET plaintext = excluded.plaintext, insert_time = excluded.insert_time",
        vec![account.0.into(), chat.into(), id.into(), plaintext.to_vec().into(), now.into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn outgoing_event<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    chat: &str,
    id: &str,
) -> Result<Option<Vec<u8>>> {
    let row = one(
        c,
        "SELECT plaintext FROM wa_outgoing_event WHERE account = $1 AND chat = $2 AND message_id = $3",
        vec![account.0.into(), chat.into(), id.into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_outgoing_event",
            key: format!("account {account}, chat {chat}, id {id}"),
        }
        .get("plaintext")
    })
    .transpose()
}

// --- Contacts, chat settings, secrets ---

fn parse_jid(table: &'static str, key: impl Display, text: &str) -> Result<whatsapp_binary::Jid> {
    text.parse()
        .map_err(|e| corrupt(table, key, format!("JID {text:?}: {e}")))
}

/// Sets one name column of a contact; returns `Some(previous)` when it changed. Not a transaction: the read and
/// the write race only with another writer of the same name, and the last writer wins either way.
pub(crate) async fn put_contact_field<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    column: &'static str,
    jid: &whatsapp_binary::Jid,
    name: &str,
) -> Result<Option<String>> {
    let key = jid.to_string();
    let row = one(
        c,
        &format!("SELECT {column} FROM wa_contact WHERE account = $1 AND jid = $2"),
        vec![account.0.into(), key.clone().into()],
    )
    .await?;
    let previous: String = match row {
        Some(row) => Row {
            row: &row,
            table: "wa_contact",
            key: format!("account {account}, jid {key}"),
        }
        .get(column)?,
        None => String::new(),
    };
    if previous == name {
        return Ok(None);
    }
    let sql = format!(
        "INSERT INTO wa_contact (account, jid, {column}) VALUES ($1, $2, $3) \
         ON CONFLICT (account, jid) DO UPDATE SET {column} = excluded.{column}"
    );
    exec(c, &sql, vec![account.0.into(), key.into(), name.into()]).await?;
    Ok(Some(previous))
}

pub(crate) async fn put_contact_names<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    names: &[ContactName],
) -> Result<()> {
    let rows = last_wins(names, |n| n.jid.to_string())
        .into_iter()
        .map(|n| {
            vec![
                account.0.into(),
                n.jid.to_string().into(),
                n.first_name.clone().into(),
                n.full_name.clone().into(),
            ]
        })
        .collect();
    upsert_rows(
        c,
        "INSERT INTO wa_contact (account, jid, first_name, full_name) VALUES",
        "ON CONFLICT (account, jid) DO UPDATE SET first_name = excluded.first_name, full_name = excluded.full_name",
        4,
        rows,
    )
    .await
}

const CONTACT_COLUMNS: &str = "jid, first_name, full_name, push_name, business_name";

fn contact_row(row: &QueryResult, account: AccountId) -> Result<Contact> {
    let r = Row {
        row,
        table: "wa_contact",
        key: format!("account {account}"),
    };
    let jid: String = r.get("jid")?;
    let r = Row {
        key: format!("account {account}, jid {jid}"),
        ..r
    };
    Ok(Contact {
        jid: parse_jid("wa_contact", &r.key, &jid)?,
        first_name: r.get("first_name")?,
        full_name: r.get("full_name")?,
        push_name: r.get("push_name")?,
        business_name: r.get("business_name")?,
    })
}

pub(crate) async fn contact<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    jid: &whatsapp_binary::Jid,
) -> Result<Option<Contact>> {
    let sql = format!("SELECT {CONTACT_COLUMNS} FROM wa_contact WHERE account = $1 AND jid = $2");
    let row = one(c, &sql, vec![account.0.into(), jid.to_string().into()]).await?;
    row.map(|row| contact_row(&row, account)).transpose()
}

pub(crate) async fn contacts<C: ConnectionTrait>(c: &C, account: AccountId) -> Result<Vec<Contact>> {
    let sql = format!("SELECT {CONTACT_COLUMNS} FROM wa_contact WHERE account = $1 ORDER BY jid");
    all(c, &sql, vec![account.0.into()])
        .await?
        .iter()
        .map(|row| contact_row(row, account))
        .collect()
}

pub(crate) async fn put_chat_setting<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    column: &'static str,
    chat: &whatsapp_binary::Jid,
    value: Value,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO wa_chat_settings (account, chat, {column}) VALUES ($1, $2, $3) \
         ON CONFLICT (account, chat) DO UPDATE SET {column} = excluded.{column}"
    );
    exec(c, &sql, vec![account.0.into(), chat.to_string().into(), value])
        .await
        .map(drop)
}

pub(crate) async fn chat_settings<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    chat: &whatsapp_binary::Jid,
) -> Result<Option<ChatSettings>> {
    let row = one(
        c,
        "SELECT muted_until, pinned, archived FROM wa_chat_settings WHERE account = $1 AND chat = $2",
        vec![account.0.into(), chat.to_string().into()],
    )
    .await?;
    row.map(|row| {
        let r = Row {
            row: &row,
            table: "wa_chat_settings",
            key: format!("account {account}, chat {chat}"),
        };
        Ok(ChatSettings {
            muted_until: r.get("muted_until")?,
            pinned: r.get("pinned")?,
            archived: r.get("archived")?,
        })
    })
    .transpose()
}

pub(crate) async fn put_message_secrets<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    secrets: &[MessageSecret],
) -> Result<()> {
    // DO NOTHING keeps the first secret of a message, also within one statement.
    let rows = secrets
        .iter()
        .map(|m| {
            vec![
                account.0.into(),
                m.chat.to_string().into(),
                m.sender.to_string().into(),
                m.id.clone().into(),
                m.secret.clone().into(),
            ]
        })
        .collect();
    upsert_rows(
        c,
        "INSERT INTO wa_message_secret (account, chat, sender, message_id, secret) VALUES",
        "ON CONFLICT (account, chat, sender, message_id) DO NOTHING",
        5,
        rows,
    )
    .await
}

pub(crate) async fn message_secret<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    chat: &whatsapp_binary::Jid,
    sender: &whatsapp_binary::Jid,
    id: &str,
) -> Result<Option<Vec<u8>>> {
    let row = one(
        c,
        "SELECT secret FROM wa_message_secret WHERE account = $1 AND chat = $2 AND sender = $3 AND message_id = $4",
        vec![account.0.into(), chat.to_string().into(), sender.to_string().into(), id.into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_message_secret",
            key: format!("account {account}, chat {chat}, id {id}"),
        }
        .get("secret")
    })
    .transpose()
}

pub(crate) async fn put_privacy_tokens<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    tokens: &[PrivacyToken],
) -> Result<()> {
    let rows = last_wins(tokens, |t| t.user.to_string())
        .into_iter()
        .map(|t| {
            vec![
                account.0.into(),
                t.user.to_string().into(),
                t.token.clone().into(),
                t.timestamp.into(),
            ]
        })
        .collect();
    upsert_rows(
        c,
        "INSERT INTO wa_privacy_token (account, user_jid, token, token_timestamp) VALUES",
        "ON CONFLICT (account, user_jid) DO UPDATE SET token = excluded.token, token_timestamp = excluded.token_timestamp",
        4,
        rows,
    )
    .await
}

pub(crate) async fn privacy_token<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    user: &whatsapp_binary::Jid,
) -> Result<Option<PrivacyToken>> {
    let row = one(
        c,
        "SELECT token, token_timestamp FROM wa_privacy_token WHERE account = $1 AND user_jid = $2",
        vec![account.0.into(), user.to_string().into()],
    )
    .await?;
    row.map(|row| {
        let r = Row {
            row: &row,
            table: "wa_privacy_token",
            key: format!("account {account}, user {user}"),
        };
        Ok(PrivacyToken {
            user: user.clone(),
            token: r.get("token")?,
            timestamp: r.get("token_timestamp")?,
        })
    })
    .transpose()
}

pub(crate) async fn delete_expired_privacy_tokens<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    cutoff: i64,
) -> Result<u64> {
    exec(
        c,
        "DELETE FROM wa_privacy_token WHERE account = $1 AND token_timestamp < $2",
        vec![account.0.into(), cutoff.into()],
    )
    .await
}

pub(crate) async fn put_issued_privacy_token<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    user: &whatsapp_binary::Jid,
    timestamp: i64,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_privacy_token_issued (account, user_jid, sender_timestamp) VALUES ($1, $2, $3) \
         ON CONFLICT (account, user_jid) DO UPDATE SET sender_timestamp = excluded.sender_timestamp",
        vec![account.0.into(), user.to_string().into(), timestamp.into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn issued_privacy_token<C: ConnectionTrait>(
    c: &C,
    account: AccountId,
    user: &whatsapp_binary::Jid,
) -> Result<Option<i64>> {
    let row = one(
        c,
        "SELECT sender_timestamp FROM wa_privacy_token_issued WHERE account = $1 AND user_jid = $2",
        vec![account.0.into(), user.to_string().into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_privacy_token_issued",
            key: format!("account {account}, user {user}"),
        }
        .get("sender_timestamp")
    })
    .transpose()
}

pub(crate) async fn put_nct_salt<C: ConnectionTrait>(c: &C, account: AccountId, salt: &[u8]) -> Result<()> {
    exec(
        c,
        "INSERT INTO wa_nct_salt (account, salt) VALUES ($1, $2) \
         ON CONFLICT (account) DO UPDATE SET salt = excluded.salt",
        vec![account.0.into(), salt.to_vec().into()],
    )
    .await
    .map(drop)
}

pub(crate) async fn nct_salt<C: ConnectionTrait>(c: &C, account: AccountId) -> Result<Option<Vec<u8>>> {
    let row = one(
        c,
        "SELECT salt FROM wa_nct_salt WHERE account = $1",
        vec![account.0.into()],
    )
    .await?;
    row.map(|row| {
        Row {
            row: &row,
            table: "wa_nct_salt",
            key: format!("account {account}"),
        }
        .get("salt")
    })
    .transpose()
}

//! One account's handle ([`SqlAccount`]) and its transaction ([`SqlTransaction`]).

use core::future::Future;
use std::collections::BTreeMap;

use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use whatsapp_binary::Jid;
use whatsapp_store::{
    AccountId, AccountStore, AppStateKeyStore, AppStateStore, AppStateSyncKey, AppStateVersion,
    BufferedEvent, ChatSettings, ChatSettingsStore, Contact, ContactName, ContactStore, Device,
    EventBufferStore, IdentityStore, MessageSecret, MutationMac, PreKey, PreKeyStore, PrivacyToken, Result,
    SecretStore, SenderKeyStore, SessionStore, StoreTransaction, UnixMillis,
};

use crate::query::{self as q, db_err};

/// One account of a [`SqlBackend`](crate::SqlBackend): the account id and a handle on the shared pool. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct SqlAccount {
    pub(crate) id: AccountId,
    pub(crate) db: DatabaseConnection,
}

impl IdentityStore for SqlAccount {
    fn put_identity(&self, address: &str, key: &[u8; 32]) -> impl Future<Output = Result<()>> + Send {
        q::put_identity(&self.db, self.id, address, key)
    }
    fn identity(&self, address: &str) -> impl Future<Output = Result<Option<[u8; 32]>>> + Send {
        q::identity(&self.db, self.id, address)
    }
    fn delete_identity(&self, address: &str) -> impl Future<Output = Result<()>> + Send {
        q::delete_identity(&self.db, self.id, address)
    }
    fn delete_all_identities(&self, user: &str) -> impl Future<Output = Result<u64>> + Send {
        q::delete_user(&self.db, "wa_identity", self.id, user)
    }
    fn user_identities(&self, user: &str) -> impl Future<Output = Result<Vec<(String, [u8; 32])>>> + Send {
        q::user_identities(&self.db, self.id, user)
    }
}

impl SessionStore for SqlAccount {
    fn session(&self, address: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        q::session(&self.db, self.id, address)
    }
    fn sessions(
        &self,
        addresses: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>>> + Send {
        q::sessions(&self.db, self.id, addresses)
    }
    fn put_session(&self, address: &str, session: &[u8]) -> impl Future<Output = Result<()>> + Send {
        q::put_session(&self.db, self.id, address, session)
    }
    fn put_sessions(&self, sessions: &[(String, Vec<u8>)]) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::put_sessions(&tx, self.id, sessions).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn delete_session(&self, address: &str) -> impl Future<Output = Result<()>> + Send {
        q::delete_session(&self.db, self.id, address)
    }
    fn delete_all_sessions(&self, user: &str) -> impl Future<Output = Result<u64>> + Send {
        q::delete_user(&self.db, "wa_session", self.id, user)
    }
    fn user_sessions(&self, user: &str) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>>> + Send {
        q::user_sessions(&self.db, self.id, user)
    }
}

impl PreKeyStore for SqlAccount {
    fn reserve_prekey_ids(&self, count: u32) -> impl Future<Output = Result<Vec<u32>>> + Send {
        async move {
            let start = q::reserve_prekeys(&self.db, self.id, count).await?;
            Ok((start..start + u64::from(count))
                .map(whatsapp_store::prekey_id_of)
                .collect())
        }
    }
    fn put_prekeys(&self, prekeys: &[PreKey]) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::put_prekeys(&tx, self.id, prekeys).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn prekey(&self, id: u32) -> impl Future<Output = Result<Option<PreKey>>> + Send {
        q::prekey(&self.db, self.id, id)
    }
    fn remove_prekey(&self, id: u32) -> impl Future<Output = Result<()>> + Send {
        q::remove_prekey(&self.db, self.id, id)
    }
    fn mark_prekeys_uploaded(&self, ids: &[u32]) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::mark_uploaded(&tx, self.id, ids).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn uploaded_prekey_count(&self) -> impl Future<Output = Result<u64>> + Send {
        q::uploaded_count(&self.db, self.id)
    }
    fn pending_prekeys(&self, limit: u32) -> impl Future<Output = Result<Vec<PreKey>>> + Send {
        q::pending_prekeys(&self.db, self.id, limit)
    }
}

impl SenderKeyStore for SqlAccount {
    fn put_sender_key(
        &self,
        group: &str,
        sender: &str,
        record: &[u8],
    ) -> impl Future<Output = Result<()>> + Send {
        q::put_sender_key(&self.db, self.id, group, sender, record)
    }
    fn sender_key(&self, group: &str, sender: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        q::sender_key(&self.db, self.id, group, sender)
    }
    fn delete_sender_key(&self, group: &str, sender: &str) -> impl Future<Output = Result<()>> + Send {
        q::delete_sender_key(&self.db, self.id, group, sender)
    }
    fn user_sender_keys(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(String, String, Vec<u8>)>>> + Send {
        q::user_sender_keys(&self.db, self.id, user)
    }
    fn sender_key_recipients(&self, group: &str) -> impl Future<Output = Result<Vec<String>>> + Send {
        q::sender_key_recipients(&self.db, self.id, group)
    }
    fn add_sender_key_recipients(
        &self,
        group: &str,
        devices: &[String],
    ) -> impl Future<Output = Result<()>> + Send {
        q::add_sender_key_recipients(&self.db, self.id, group, devices)
    }
    fn clear_sender_key_recipients(&self, group: &str) -> impl Future<Output = Result<()>> + Send {
        q::clear_sender_key_recipients(&self.db, self.id, group)
    }
}

impl AppStateKeyStore for SqlAccount {
    fn put_app_state_sync_key(&self, key: &AppStateSyncKey) -> impl Future<Output = Result<()>> + Send {
        q::put_app_state_sync_key(&self.db, self.id, key)
    }
    fn app_state_sync_key(&self, id: &[u8]) -> impl Future<Output = Result<Option<AppStateSyncKey>>> + Send {
        q::app_state_sync_key(&self.db, self.id, id)
    }
    fn latest_app_state_sync_key_id(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        q::latest_app_state_sync_key_id(&self.db, self.id)
    }
    fn app_state_sync_keys(&self) -> impl Future<Output = Result<Vec<AppStateSyncKey>>> + Send {
        q::app_state_sync_keys(&self.db, self.id)
    }
}

impl AppStateStore for SqlAccount {
    fn put_app_state_version(
        &self,
        name: &str,
        version: &AppStateVersion,
    ) -> impl Future<Output = Result<()>> + Send {
        q::put_app_state_version(&self.db, self.id, name, version)
    }
    fn app_state_version(&self, name: &str) -> impl Future<Output = Result<Option<AppStateVersion>>> + Send {
        q::app_state_version(&self.db, self.id, name)
    }
    fn delete_app_state_version(&self, name: &str) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::delete_app_state_version(&tx, self.id, name).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        macs: &[MutationMac],
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::put_mutation_macs(&tx, self.id, name, version, macs).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn delete_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::delete_mutation_macs(&tx, self.id, name, index_macs).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn mutation_mac(
        &self,
        name: &str,
        index_mac: &[u8; 32],
    ) -> impl Future<Output = Result<Option<[u8; 32]>>> + Send {
        q::mutation_mac(&self.db, self.id, name, index_mac)
    }
}

impl EventBufferStore for SqlAccount {
    fn buffered_event(&self, hash: &[u8; 32]) -> impl Future<Output = Result<Option<BufferedEvent>>> + Send {
        q::buffered_event(&self.db, self.id, hash)
    }
    fn put_buffered_event(
        &self,
        hash: &[u8; 32],
        event: &BufferedEvent,
    ) -> impl Future<Output = Result<()>> + Send {
        q::put_buffered_event(&self.db, self.id, hash, event)
    }
    fn clear_buffered_plaintexts(&self, hashes: &[[u8; 32]]) -> impl Future<Output = Result<()>> + Send {
        q::clear_buffered_plaintexts(&self.db, self.id, hashes)
    }
    fn delete_old_buffered_events(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send {
        q::delete_old(&self.db, "wa_event_buffer", self.id, cutoff)
    }
    fn put_outgoing_event(
        &self,
        chat: &Jid,
        message_id: &str,
        plaintext: &[u8],
        now: UnixMillis,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            q::put_outgoing_event(&self.db, self.id, &chat.to_string(), message_id, plaintext, now).await
        }
    }
    fn outgoing_event(
        &self,
        chat: &Jid,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        async move { q::outgoing_event(&self.db, self.id, &chat.to_string(), message_id).await }
    }
    fn delete_old_outgoing_events(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send {
        q::delete_old(&self.db, "wa_outgoing_event", self.id, cutoff)
    }
}

impl ContactStore for SqlAccount {
    fn put_push_name(&self, jid: &Jid, name: &str) -> impl Future<Output = Result<Option<String>>> + Send {
        q::put_contact_field(&self.db, self.id, "push_name", jid, name)
    }
    fn put_business_name(
        &self,
        jid: &Jid,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send {
        q::put_contact_field(&self.db, self.id, "business_name", jid, name)
    }
    fn put_contact_names(&self, names: &[ContactName]) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::put_contact_names(&tx, self.id, names).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn contact(&self, jid: &Jid) -> impl Future<Output = Result<Option<Contact>>> + Send {
        q::contact(&self.db, self.id, jid)
    }
    fn contacts(&self) -> impl Future<Output = Result<Vec<Contact>>> + Send {
        q::contacts(&self.db, self.id)
    }
}

impl ChatSettingsStore for SqlAccount {
    fn put_muted_until(&self, chat: &Jid, until: i64) -> impl Future<Output = Result<()>> + Send {
        q::put_chat_setting(&self.db, self.id, "muted_until", chat, until.into())
    }
    fn put_pinned(&self, chat: &Jid, pinned: bool) -> impl Future<Output = Result<()>> + Send {
        q::put_chat_setting(&self.db, self.id, "pinned", chat, pinned.into())
    }
    fn put_archived(&self, chat: &Jid, archived: bool) -> impl Future<Output = Result<()>> + Send {
        q::put_chat_setting(&self.db, self.id, "archived", chat, archived.into())
    }
    fn chat_settings(&self, chat: &Jid) -> impl Future<Output = Result<Option<ChatSettings>>> + Send {
        q::chat_settings(&self.db, self.id, chat)
    }
}

impl SecretStore for SqlAccount {
    fn put_message_secrets(&self, secrets: &[MessageSecret]) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::put_message_secrets(&tx, self.id, secrets).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn message_secret(
        &self,
        chat: &Jid,
        sender: &Jid,
        id: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        q::message_secret(&self.db, self.id, chat, sender, id)
    }
    fn put_privacy_tokens(&self, tokens: &[PrivacyToken]) -> impl Future<Output = Result<()>> + Send {
        async move {
            let tx = self.db.begin().await.map_err(db_err)?;
            q::put_privacy_tokens(&tx, self.id, tokens).await?;
            tx.commit().await.map_err(db_err)
        }
    }
    fn privacy_token(&self, user: &Jid) -> impl Future<Output = Result<Option<PrivacyToken>>> + Send {
        q::privacy_token(&self.db, self.id, user)
    }
    fn delete_expired_privacy_tokens(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send {
        q::delete_expired_privacy_tokens(&self.db, self.id, cutoff)
    }
    fn put_issued_privacy_token(
        &self,
        user: &Jid,
        timestamp: UnixMillis,
    ) -> impl Future<Output = Result<()>> + Send {
        q::put_issued_privacy_token(&self.db, self.id, user, timestamp)
    }
    fn issued_privacy_token(&self, user: &Jid) -> impl Future<Output = Result<Option<UnixMillis>>> + Send {
        q::issued_privacy_token(&self.db, self.id, user)
    }
    fn put_nct_salt(&self, salt: &[u8]) -> impl Future<Output = Result<()>> + Send {
        q::put_nct_salt(&self.db, self.id, salt)
    }
    fn nct_salt(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        q::nct_salt(&self.db, self.id)
    }
}

/// A database transaction on one account. Only writes are offered: on SQLite a transaction that reads first and
/// writes later can fail to upgrade its lock under contention, while one that writes first waits its turn.
///
/// Dropping it without [`commit`](StoreTransaction::commit) rolls it back.
#[derive(Debug)]
pub struct SqlTransaction {
    id: AccountId,
    tx: DatabaseTransaction,
}

impl StoreTransaction for SqlTransaction {
    fn put_identity(&mut self, address: &str, key: &[u8; 32]) -> impl Future<Output = Result<()>> + Send {
        q::put_identity(&self.tx, self.id, address, key)
    }
    fn put_session(&mut self, address: &str, session: &[u8]) -> impl Future<Output = Result<()>> + Send {
        q::put_session(&self.tx, self.id, address, session)
    }
    fn delete_session(&mut self, address: &str) -> impl Future<Output = Result<()>> + Send {
        q::delete_session(&self.tx, self.id, address)
    }
    fn delete_identity(&mut self, address: &str) -> impl Future<Output = Result<()>> + Send {
        q::delete_identity(&self.tx, self.id, address)
    }
    fn delete_sender_key(&mut self, group: &str, sender: &str) -> impl Future<Output = Result<()>> + Send {
        q::delete_sender_key(&self.tx, self.id, group, sender)
    }
    fn put_sender_key(
        &mut self,
        group: &str,
        sender: &str,
        record: &[u8],
    ) -> impl Future<Output = Result<()>> + Send {
        q::put_sender_key(&self.tx, self.id, group, sender, record)
    }
    fn remove_prekey(&mut self, id: u32) -> impl Future<Output = Result<()>> + Send {
        q::remove_prekey(&self.tx, self.id, id)
    }
    fn put_buffered_event(
        &mut self,
        hash: &[u8; 32],
        event: &BufferedEvent,
    ) -> impl Future<Output = Result<()>> + Send {
        q::put_buffered_event(&self.tx, self.id, hash, event)
    }
    fn clear_buffered_plaintexts(&mut self, hashes: &[[u8; 32]]) -> impl Future<Output = Result<()>> + Send {
        q::clear_buffered_plaintexts(&self.tx, self.id, hashes)
    }
    fn commit(self) -> impl Future<Output = Result<()>> + Send {
        async move { self.tx.commit().await.map_err(db_err) }
    }
    fn rollback(self) -> impl Future<Output = Result<()>> + Send {
        async move { self.tx.rollback().await.map_err(db_err) }
    }
}

impl AccountStore for SqlAccount {
    type Transaction = SqlTransaction;

    fn id(&self) -> AccountId {
        self.id
    }
    fn device(&self) -> impl Future<Output = Result<Device>> + Send {
        q::device(&self.db, self.id)
    }
    fn put_device(&self, device: &Device) -> impl Future<Output = Result<()>> + Send {
        q::put_device(&self.db, self.id, device)
    }
    fn transaction(&self) -> impl Future<Output = Result<SqlTransaction>> + Send {
        async move {
            Ok(SqlTransaction {
                id: self.id,
                tx: self.db.begin().await.map_err(db_err)?,
            })
        }
    }
}

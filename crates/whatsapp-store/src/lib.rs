//! Storage API of the WhatsApp Web multi-device client: the store traits, the data model, an in-memory backend,
//! and a conformance suite every backend's tests run.
//!
//! Layer: storage API, below the protocol engine. Entry types: [`Backend`] (hosts many accounts and the global
//! LID map, hands out leases), [`AccountStore`] (one account's cheap-to-clone handle implementing every
//! per-account trait: [`IdentityStore`], [`SessionStore`], [`PreKeyStore`], [`SenderKeyStore`],
//! [`AppStateKeyStore`], [`AppStateStore`], [`EventBufferStore`], [`ContactStore`], [`ChatSettingsStore`],
//! [`SecretStore`]), [`StoreTransaction`], the [`Device`] record,
//! [`MemoryBackend`], and [`conformance::run`].
//!
//! How a client holds a store: it opens (or creates) its account on a shared backend once, and keeps the
//! returned handle. The handle is generic (`B::Account`), not a trait object, because the traits use
//! `impl Future + Send` returns so that they stay runtime-agnostic and allocation-free:
//!
//! ```
//! # use whatsapp_store::{Backend, AccountStore, SessionStore, MemoryBackend, conformance::sample_device};
//! # async fn demo() -> whatsapp_store::Result<()> {
//! let backend = MemoryBackend::new();
//! let account = backend.create_account(&sample_device(1)).await?; // later: backend.open_account(id)
//! let lease = backend.acquire_lease(account.id(), "process-1", 1_700_000_000_000, 30_000).await?;
//! account.put_session("15551234567:0", b"serialized session").await?;
//! let mut tx = account.transaction().await?; // session + prekey removal + event: all or nothing
//! whatsapp_store::StoreTransaction::commit(tx).await?;
//! backend.release_lease(&lease).await?;
//! # Ok(()) }
//! ```
//!
//! Signal records (sessions, sender keys) are opaque bytes keyed by Signal address strings
//! (`user[_agent]:device`, protocol-facts §2); key pairs are raw bytes. Time is always passed in (unix
//! milliseconds), never read from a clock.
//!
//! This crate does not do SQL (see `whatsapp-store-sql`), Signal cryptography or key generation (the caller
//! generates prekeys and hands them over), and it does not depend on an async runtime.

mod error;
mod memory;
mod model;
mod traits;

pub mod conformance;

pub use error::{Result, StoreError};
pub use memory::{MemoryAccount, MemoryBackend, MemoryTransaction};
pub use model::{
    APP_STATE_HASH_LEN, AccountId, AppStateSyncKey, AppStateVersion, BufferedEvent, ChatSettings, Contact,
    ContactName, Device, KeyPairBytes, Lease, LidMapping, MAX_PREKEY_ID, MessageSecret, MutationMac, PreKey,
    PrivacyToken, SignedPreKey, UnixMillis, prekey_id_of,
};
pub use traits::{
    AccountStore, AppStateKeyStore, AppStateStore, Backend, ChatSettingsStore, ContactStore,
    EventBufferStore, IdentityStore, LidStore, PreKeyStore, SecretStore, SenderKeyStore, SessionStore,
    StoreTransaction,
};

//! The store's error type, shared by every backend.

use crate::AccountId;

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No account with this id exists (never created, or deleted).
    #[error("account {0} not found")]
    AccountNotFound(AccountId),
    /// A stored row could not be decoded (wrong key length, out-of-range number, bad JID); the row is left as it
    /// is so that it can be inspected.
    #[error("corrupt row in table {table}, key {key}: {reason}")]
    Corrupt {
        /// The table (or, for the memory backend, the map) holding the row.
        table: &'static str,
        /// The row's key, as text.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another owner holds a live lease on the account.
    #[error("account {account} is leased by {owner:?} until {expires_at_ms} (unix ms)")]
    LeaseHeld {
        /// The account asked for.
        account: AccountId,
        /// The owner holding the lease.
        owner: String,
        /// When that lease expires, in unix milliseconds.
        expires_at_ms: i64,
    },
    /// The lease being renewed or released is no longer held by this owner (it expired and another owner took it,
    /// or it was released).
    #[error("lease of account {account} by {owner:?} is no longer held")]
    LeaseLost {
        /// The account of the lease.
        account: AccountId,
        /// The owner that lost it.
        owner: String,
    },
    /// An argument is out of range (for example a batch larger than the store accepts).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend failed (I/O, connection, SQL error).
    #[error("store backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The result of a store operation.
pub type Result<T, E = StoreError> = core::result::Result<T, E>;

//! Phone-number and LID addresses of the same user.
//!
//! WhatsApp moves accounts from phone-number addressing (`PN@s.whatsapp.net`) to LID addressing (`LID@lid`). A
//! peer's messages may then arrive from its LID device with the phone number beside it (`sender_pn`,
//! `participant_pn`), or the other way round (`sender_lid`, `participant_lid`). Signal keys its records by address,
//! so sessions made under the phone number would not be found under the LID and the first message after the switch
//! would fail to decrypt (whatsmeow's most common decryption failure). Here every device whose LID is known is
//! handled under its LID address: its phone-number records are moved there once per process
//! ([`whatsapp_core::signal_store::migrate_pn_to_lid`]), before its first message is decrypted or encrypted, and
//! outgoing stanzas keep naming the device as the caller or the server named it.
//!
//! The map itself is in the store (global, shared by every account of a backend); each client remembers what it
//! read or wrote, including "no LID known", so the receive path does not ask the database for every message.
//! Every write goes through [`Shared::put_lid_mappings`] to keep that memory true.

use std::collections::{HashMap, HashSet};

use tracing::{debug, info};
use whatsapp_binary::Jid;
use whatsapp_store::{Backend, LidMapping, StoreError};

use crate::{ClientError, Shared};

/// What this client knows of the LID map, and which users' Signal records it already moved.
#[derive(Debug, Default)]
pub(crate) struct LidMemory {
    /// Phone-number user to LID user (`None`: the store has none).
    by_pn: HashMap<String, Option<String>>,
    /// LID user to phone-number user (`None`: the store has none).
    by_lid: HashMap<String, Option<String>>,
    /// Phone-number users whose Signal records were moved to their LID by this process.
    migrated: HashSet<String>,
}

impl<B: Backend> Shared<B> {
    fn lid_memory(&self) -> std::sync::MutexGuard<'_, LidMemory> {
        self.lids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores LID to phone-number mappings, skipping those already known.
    pub(crate) async fn put_lid_mappings(&self, mappings: &[LidMapping]) -> Result<(), StoreError> {
        let new: Vec<LidMapping> = {
            let memory = self.lid_memory();
            mappings
                .iter()
                .filter(|m| memory.by_pn.get(&m.pn) != Some(&Some(m.lid.clone())))
                .cloned()
                .collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        self.backend.put_lid_mappings(&new).await?;
        let mut memory = self.lid_memory();
        for mapping in new {
            // A user mapped again drops its old counterpart, as the store does.
            if let Some(Some(old_lid)) = memory.by_pn.insert(mapping.pn.clone(), Some(mapping.lid.clone())) {
                memory.by_lid.remove(&old_lid);
            }
            if let Some(Some(old_pn)) = memory.by_lid.insert(mapping.lid, Some(mapping.pn)) {
                memory.by_pn.remove(&old_pn);
            }
        }
        Ok(())
    }

    /// The LID user of a phone-number JID's user, if known.
    pub(crate) async fn lid_of(&self, pn: &Jid) -> Result<Option<String>, StoreError> {
        if let Some(known) = self.lid_memory().by_pn.get(pn.user()) {
            return Ok(known.clone());
        }
        let lid = self
            .backend
            .lid_for_pn(&pn.to_non_ad())
            .await?
            .map(|lid| lid.user().to_owned());
        self.lid_memory().by_pn.insert(pn.user().to_owned(), lid.clone());
        Ok(lid)
    }

    /// The phone-number user of a LID JID's user, if known.
    pub(crate) async fn pn_of(&self, lid: &Jid) -> Result<Option<String>, StoreError> {
        if let Some(known) = self.lid_memory().by_lid.get(lid.user()) {
            return Ok(known.clone());
        }
        let pn = self
            .backend
            .pn_for_lid(&lid.to_non_ad())
            .await?
            .map(|pn| pn.user().to_owned());
        self.lid_memory().by_lid.insert(lid.user().to_owned(), pn.clone());
        Ok(pn)
    }

    /// The address Signal uses for `device`: its LID device when the LID is known, otherwise `device` itself.
    /// The first time a user's LID is used, Signal records kept under the phone number move to the LID. Takes the
    /// Signal lock for that move, so it must not be called with the lock held.
    pub(crate) async fn signal_address(&self, device: &Jid) -> Result<Jid, ClientError> {
        match device.server() {
            Jid::DEFAULT_USER_SERVER => match self.lid_of(device).await? {
                Some(lid) => {
                    let lid = Jid::with_device(lid, Jid::LID_SERVER, device.device());
                    self.migrate_once(device, &lid).await?;
                    Ok(lid)
                }
                None => Ok(device.clone()),
            },
            Jid::LID_SERVER => {
                if let Some(pn) = self.pn_of(device).await? {
                    let pn = Jid::with_device(pn, Jid::DEFAULT_USER_SERVER, device.device());
                    self.migrate_once(&pn, device).await?;
                }
                Ok(device.clone())
            }
            _ => Ok(device.clone()),
        }
    }

    /// Each device paired with its Signal address, in order (see [`Shared::signal_address`]).
    pub(crate) async fn signal_addresses(&self, devices: Vec<Jid>) -> Result<Vec<(Jid, Jid)>, ClientError> {
        let mut out = Vec::with_capacity(devices.len());
        for device in devices {
            let address = self.signal_address(&device).await?;
            out.push((device, address));
        }
        Ok(out)
    }

    /// Moves the Signal records of `pn`'s user to `lid`'s, unless this process already did.
    async fn migrate_once(&self, pn: &Jid, lid: &Jid) -> Result<(), ClientError> {
        if self.lid_memory().migrated.contains(pn.user()) {
            return Ok(());
        }
        let moved = {
            let _signal = self.signal_lock.lock().await;
            whatsapp_core::signal_store::migrate_pn_to_lid(&self.account, &pn.to_non_ad(), &lid.to_non_ad())
                .await?
        };
        self.lid_memory().migrated.insert(pn.user().to_owned());
        if moved.is_empty() {
            debug!(pn = pn.user(), lid = lid.user(), "nothing to move to the LID");
        } else {
            info!(
                pn = pn.user(),
                lid = lid.user(),
                sessions = moved.sessions,
                identities = moved.identities,
                sender_keys = moved.sender_keys,
                "moved Signal records from the phone number to the LID"
            );
        }
        Ok(())
    }
}

//! Device lists: which devices each user has, kept in memory between sends (protocol-facts §3.6).
//!
//! A message is encrypted once per device of the recipient and of this account, so each send needs the device
//! lists. They are asked for once (`usync`) and then remembered per user; the server keeps them true with `devices`
//! notifications (a device linked or unlinked, with the new list's participant hash, checked here: a list that
//! does not hash as announced is dropped and asked for again). Each message carries the participant hash of the
//! devices it was encrypted for; when the server's ack names a different one, a list was stale: the lists of that
//! chat are asked for again and every device that was missed gets its copy, as the answer to a retry would (same
//! message id), so a device linked while a notification was lost still gets the message.
//!
//! Group member lists are remembered the same way: asked for (`w:g2` query) on the first send to a group, dropped
//! when a `w:gp2` notification about the group arrives, when this device changes the group's members, and when a
//! group message's ack shows a stale participant hash (a member added without a notification reaching us).

use std::collections::{HashMap, HashSet};

use tracing::{debug, info, warn};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::retry::RetryRequest;
use whatsapp_core::usync::{self, DeviceChangeKind, DeviceNotification, UserDevices};
use whatsapp_store::Backend;

use crate::{Client, ClientError, Shared};

/// Each user's devices as the server last listed them (users by their JID without a device part).
pub(crate) type DeviceLists = HashMap<Jid, Vec<Jid>>;

/// Each group's members as last asked for.
pub(crate) type GroupMembers = HashMap<Jid, Members>;

/// A group's members (users, without device parts, as the group names them) and whether the group addresses
/// them by LID (`addressing_mode="lid"`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Members {
    pub(crate) users: Vec<Jid>,
    pub(crate) lid: bool,
}

impl<B: Backend> Shared<B> {
    fn device_lists(&self) -> std::sync::MutexGuard<'_, DeviceLists> {
        self.device_lists
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn group_members(&self) -> std::sync::MutexGuard<'_, GroupMembers> {
        self.group_members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets the members of `group`, so the next send to it asks for them.
    pub(crate) fn forget_group(&self, group: &Jid) {
        self.group_members().remove(group);
    }

    /// Remembers the members of `group` from a full group description.
    pub(crate) fn remember_group(&self, info: &whatsapp_core::group::GroupInfo) {
        let members = Members {
            users: info.participants.iter().map(|p| p.jid.to_non_ad()).collect(),
            lid: info.addressing_mode == Some(whatsapp_core::group_admin::AddressingMode::Lid),
        };
        self.group_members().insert(info.jid.clone(), members);
    }

    /// Forgets the device lists of `users`, so the next send asks for them.
    pub(crate) fn forget_devices(&self, users: &[Jid]) {
        let mut lists = self.device_lists();
        for user in users {
            lists.remove(&user.to_non_ad());
        }
    }

    /// Applies a `devices` notification to the remembered list of its user (a user not remembered is left to
    /// the next send to ask for).
    pub(crate) fn on_device_notification(&self, node: &Node) {
        let notification = match DeviceNotification::parse(node) {
            Ok(notification) => notification,
            Err(error) => {
                warn!(%error, "malformed device notification");
                return;
            }
        };
        let mut lists = self.device_lists();
        let changes = notification
            .changes
            .iter()
            .map(|change| (change.kind, change.device.as_ref(), change.hash.as_deref()));
        follow_changes(&mut lists, &notification.user, changes);
        // The list under the user's LID follows the LID side of the same changes (whatsmeow `notification.go`
        // handleDeviceNotification).
        if let Some(lid) = &notification.lid {
            let changes = notification.changes.iter().map(|change| {
                (
                    change.kind,
                    change.lid_device.as_ref(),
                    change.lid_hash.as_deref(),
                )
            });
            follow_changes(&mut lists, lid, changes);
        }
    }
}

/// Applies device changes (kind, device, the list's hash after it) to the remembered list of `user`; a change
/// not followed, or a list that does not hash as announced, drops the list so the next send asks for it.
fn follow_changes<'a>(
    lists: &mut DeviceLists,
    user: &Jid,
    changes: impl Iterator<Item = (DeviceChangeKind, Option<&'a Jid>, Option<&'a str>)>,
) {
    let Some(list) = lists.get_mut(user) else {
        return;
    };
    let mut keep = true;
    for (kind, device, hash) in changes {
        match (kind, device) {
            (DeviceChangeKind::Add, Some(device)) if !list.contains(device) => list.push(device.clone()),
            (DeviceChangeKind::Add, Some(_)) => {}
            (DeviceChangeKind::Remove, Some(device)) => list.retain(|known| known != device),
            _ => keep = false,
        }
        if hash.is_some_and(|hash| usync::participant_hash(list) != hash) {
            keep = false;
        }
    }
    if keep {
        debug!(%user, devices = list.len(), "device list updated");
    } else {
        debug!(%user, "device list changed in a way not followed; asking again next time");
        lists.remove(user);
    }
}

impl<B: Backend> Client<B> {
    /// The members of `group` and its addressing: remembered, or asked for.
    pub(crate) async fn members_of(&self, group: &Jid) -> Result<Members, ClientError> {
        if let Some(members) = self.shared.group_members().get(group) {
            return Ok(members.clone());
        }
        let info = whatsapp_core::group::parse_group_info(
            &self
                .send_iq(whatsapp_core::group::group_info_query(group))
                .await?,
        )?;
        self.shared.remember_group(&info);
        Ok(self
            .shared
            .group_members()
            .get(group)
            .cloned()
            .unwrap_or_default())
    }

    /// The devices of each of `users`: remembered lists, and one `usync` query for the users without one.
    pub(crate) async fn devices_of(&self, users: &[Jid]) -> Result<Vec<UserDevices>, ClientError> {
        let mut out = Vec::with_capacity(users.len());
        let mut missing = Vec::new();
        {
            let lists = self.shared.device_lists();
            for user in users {
                let user = user.to_non_ad();
                match lists.get(&user) {
                    Some(devices) => out.push(UserDevices {
                        user,
                        devices: devices.clone(),
                    }),
                    None => missing.push(user),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let sid = format!("{}", rand::random::<u64>());
        let answer = self.send_iq(usync::device_query(&missing, &sid)).await?;
        let fetched = usync::parse_devices(&answer)?;
        {
            let mut lists = self.shared.device_lists();
            // An empty list is not remembered: the user may not be on WhatsApp yet.
            for user in fetched.iter().filter(|user| !user.devices.is_empty()) {
                lists.insert(user.user.to_non_ad(), user.devices.clone());
            }
        }
        out.extend(fetched);
        Ok(out)
    }

    /// After a message ack whose participant hash differs from the one sent: asks for the device lists of `users`
    /// again and sends message `id` (in `chat`) to every device of theirs that `sent` does not include, each as the
    /// answer to a retry would. Returns the devices reached this way.
    pub(crate) async fn reach_missed_devices(
        &self,
        id: &str,
        chat: &Jid,
        users: &[Jid],
        sent: &[Jid],
    ) -> Result<Vec<Jid>, ClientError> {
        self.shared.forget_devices(users);
        let own = self.shared.own_devices().await?;
        let sent: HashSet<&Jid> = sent.iter().collect();
        let missed: Vec<Jid> = self
            .devices_of(users)
            .await?
            .into_iter()
            .flat_map(|user| user.devices)
            .filter(|device| !sent.contains(device) && !own.contains(device))
            .collect();
        let mut reached = Vec::with_capacity(missed.len());
        for device in missed {
            let request = RetryRequest {
                id: id.to_owned(),
                device: device.clone(),
                chat: if chat.is_group() {
                    chat.clone()
                } else {
                    device.to_non_ad()
                },
                count: 0,
                bundle: None,
                // This account's other device learns the chat from `recipient`, as from a retry receipt.
                recipient: (!chat.is_group() && device.user() != chat.user()).then(|| chat.clone()),
                edit: None,
                timestamp: None,
            };
            match self.resend(&request).await {
                Ok(()) => reached.push(device),
                Err(error) => warn!(%device, %error, "could not send a missed device its copy"),
            }
        }
        info!(%id, %chat, reached = reached.len(), "a device list was stale; sent the missed devices their copies");
        Ok(reached)
    }
}

//! Groups and communities: create, read, list, leave, members, settings, invite links and join requests, and the
//! group notifications turned into events. The stanzas are built and read by `whatsapp_core::group_admin` and
//! `whatsapp_core::group_notification`; this module sends them and waits for the answers.
//!
//! A request the server refuses fails with [`ClientError::Iq`]: 401 when this account is not an admin of the
//! group, 403 when it is not a member, 404 for an unknown group, 406 for an invalid invite code and 410 for a
//! revoked one (whatsmeow's `ErrIQNotAuthorized`, `ErrIQForbidden`, `ErrIQNotFound`, `ErrIQNotAcceptable`,
//! `ErrIQGone`).

use whatsapp_binary::{Jid, Node};
use whatsapp_core::group_admin::{
    self, CreateGroup, GroupInfo, GroupParticipant, JoinOutcome, JoinRequest, LinkedGroup, MemberAddMode,
    ParticipantChange,
};
use whatsapp_core::group_notification::{GroupNotification, parse_group_notification};
use whatsapp_store::Backend;

use crate::{Client, ClientError, Event, unix_now};

impl<B: Backend> Client<B> {
    /// Creates a group (or, with [`CreateGroup::community`], a community) with this account as its super admin,
    /// and returns it as the server made it. Members whose privacy settings forbid being added are listed with
    /// error 403 and an [`AddRequest`](whatsapp_core::group_admin::AddRequest) to send them instead.
    pub async fn create_group(&self, request: &CreateGroup) -> Result<GroupInfo, ClientError> {
        let answer = self.send_iq(group_admin::create_group(request)).await?;
        Ok(group_admin::parse_group_info(&answer)?)
    }

    /// Everything the server says about a group this account is in: subject, owner, description, settings and
    /// members with their admin rights.
    pub async fn group_info(&self, group: &Jid) -> Result<GroupInfo, ClientError> {
        let answer = self.send_iq(group_admin::group_info_query(group)).await?;
        let info = group_admin::parse_group_info(&answer)?;
        self.shared.remember_group(&info);
        Ok(info)
    }

    /// The groups this account is a member of, with their members and descriptions.
    pub async fn joined_groups(&self) -> Result<Vec<GroupInfo>, ClientError> {
        let answer = self.send_iq(group_admin::joined_groups_query()).await?;
        Ok(group_admin::parse_joined_groups(&answer)?)
    }

    /// Leaves a group.
    pub async fn leave_group(&self, group: &Jid) -> Result<(), ClientError> {
        self.shared.forget_group(group);
        self.send_iq(group_admin::leave_group(group)).await.map(drop)
    }

    /// Adds, removes, promotes or demotes members. The answer has one line per participant: check each one's
    /// [`status`](GroupParticipant::status) (200, or the reason it did not apply to that participant, such as
    /// 409 for someone already in the group). Fails as a whole with 401 when this account may not make the
    /// change.
    pub async fn update_group_participants(
        &self,
        group: &Jid,
        change: ParticipantChange,
        participants: &[Jid],
    ) -> Result<Vec<GroupParticipant>, ClientError> {
        // This device gets no notification of its own change.
        self.shared.forget_group(group);
        let answer = self
            .send_iq(group_admin::update_participants(group, change, participants))
            .await?;
        Ok(group_admin::parse_participant_change(&answer, change)?)
    }

    /// Sets the group's subject (name).
    pub async fn set_group_subject(&self, group: &Jid, subject: &str) -> Result<(), ClientError> {
        self.send_iq(group_admin::set_subject(group, subject))
            .await
            .map(drop)
    }

    /// Sets the group's description (an empty text deletes it). The change names the current description as its
    /// predecessor, so the group's metadata is read first.
    pub async fn set_group_description(&self, group: &Jid, text: &str) -> Result<(), ClientError> {
        let previous = self.group_info(group).await?.topic.map(|topic| topic.id);
        let id = whatsapp_core::message::message_id(unix_now().as_secs(), None, &rand::random());
        self.send_iq(group_admin::set_description(
            group,
            previous.as_deref(),
            &id,
            text,
        ))
        .await
        .map(drop)
    }

    /// Sets the group's photo (JPEG bytes) and returns the new picture's id.
    pub async fn set_group_photo(&self, group: &Jid, jpeg: &[u8]) -> Result<String, ClientError> {
        let answer = self
            .send_iq(group_admin::set_group_photo(group, Some(jpeg)))
            .await?;
        Ok(group_admin::parse_photo_id(&answer)?)
    }

    /// Removes the group's photo.
    pub async fn remove_group_photo(&self, group: &Jid) -> Result<(), ClientError> {
        self.send_iq(group_admin::set_group_photo(group, None))
            .await
            .map(drop)
    }

    /// Whether only admins may change the group's subject, description and photo.
    pub async fn set_group_locked(&self, group: &Jid, locked: bool) -> Result<(), ClientError> {
        self.send_iq(group_admin::set_locked(group, locked))
            .await
            .map(drop)
    }

    /// Whether only admins may send messages.
    pub async fn set_group_announce(&self, group: &Jid, announce: bool) -> Result<(), ClientError> {
        self.send_iq(group_admin::set_announce(group, announce))
            .await
            .map(drop)
    }

    /// The disappearing-messages timer in seconds; `None` turns disappearing messages off.
    pub async fn set_group_ephemeral(&self, group: &Jid, timer: Option<u32>) -> Result<(), ClientError> {
        self.send_iq(group_admin::set_ephemeral(group, timer))
            .await
            .map(drop)
    }

    /// Whether joining by link needs an admin's approval.
    pub async fn set_group_join_approval(&self, group: &Jid, required: bool) -> Result<(), ClientError> {
        self.send_iq(group_admin::set_join_approval(group, required))
            .await
            .map(drop)
    }

    /// Who may add members.
    pub async fn set_group_member_add_mode(
        &self,
        group: &Jid,
        mode: &MemberAddMode,
    ) -> Result<(), ClientError> {
        self.send_iq(group_admin::set_member_add_mode(group, mode))
            .await
            .map(drop)
    }

    /// The group's invite link (`https://chat.whatsapp.com/CODE`); with `reset`, a new one that revokes the old.
    pub async fn group_invite_link(&self, group: &Jid, reset: bool) -> Result<String, ClientError> {
        let answer = self.send_iq(group_admin::invite_link_query(group, reset)).await?;
        Ok(group_admin::parse_invite_link(&answer)?)
    }

    /// The group behind an invite link (or its bare code), without joining.
    pub async fn group_info_from_link(&self, link: &str) -> Result<GroupInfo, ClientError> {
        let answer = self.send_iq(group_admin::group_info_from_link(link)).await?;
        Ok(group_admin::parse_group_info(&answer)?)
    }

    /// Joins a group by invite link (or its bare code). A group that needs approval answers
    /// [`JoinOutcome::Requested`]; an admin then approves with [`answer_group_join_requests`](Self::answer_group_join_requests).
    pub async fn join_group_with_link(&self, link: &str) -> Result<JoinOutcome, ClientError> {
        let answer = self.send_iq(group_admin::join_with_link(link)).await?;
        Ok(group_admin::parse_join_with_link(&answer)?)
    }

    /// Joins a group with the code of an invite *message* (`GroupInviteMessage`) an admin sent.
    pub async fn join_group_with_invite(
        &self,
        group: &Jid,
        inviter: &Jid,
        code: &str,
        expiration: u64,
    ) -> Result<(), ClientError> {
        self.send_iq(group_admin::join_with_invite(group, inviter, code, expiration))
            .await
            .map(drop)
    }

    /// The requests to join waiting for an admin's approval.
    pub async fn group_join_requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, ClientError> {
        let answer = self.send_iq(group_admin::join_requests_query(group)).await?;
        Ok(group_admin::parse_join_requests(&answer)?)
    }

    /// Approves (`approve`) or rejects join requests; one line per participant, as for
    /// [`update_group_participants`](Self::update_group_participants).
    pub async fn answer_group_join_requests(
        &self,
        group: &Jid,
        approve: bool,
        participants: &[Jid],
    ) -> Result<Vec<GroupParticipant>, ClientError> {
        self.shared.forget_group(group);
        let answer = self
            .send_iq(group_admin::join_request_action(group, approve, participants))
            .await?;
        Ok(group_admin::parse_join_request_action(&answer, approve)?)
    }

    /// Links a group to a community (this account must be an admin of both).
    pub async fn link_group(&self, community: &Jid, group: &Jid) -> Result<(), ClientError> {
        self.send_iq(group_admin::link_group(community, group))
            .await
            .map(drop)
    }

    /// Unlinks a group from a community.
    pub async fn unlink_group(&self, community: &Jid, group: &Jid) -> Result<(), ClientError> {
        self.send_iq(group_admin::unlink_group(community, group))
            .await
            .map(drop)
    }

    /// The groups linked to a community.
    pub async fn sub_groups(&self, community: &Jid) -> Result<Vec<LinkedGroup>, ClientError> {
        let answer = self.send_iq(group_admin::sub_groups_query(community)).await?;
        Ok(group_admin::parse_sub_groups(&answer)?)
    }

    /// The members of all the groups linked to a community.
    pub async fn linked_groups_participants(
        &self,
        community: &Jid,
    ) -> Result<Vec<GroupParticipant>, ClientError> {
        let answer = self
            .send_iq(group_admin::linked_groups_participants_query(community))
            .await?;
        Ok(group_admin::parse_linked_groups_participants(&answer)?)
    }
}

/// The event for a `w:gp2` notification (already acknowledged by the caller).
pub(crate) fn notification_event(node: &Node) -> Event {
    match parse_group_notification(node) {
        Ok(GroupNotification::Joined(joined)) => Event::JoinedGroup(Box::new(joined)),
        Ok(GroupNotification::Changed(change)) => Event::GroupChanged(Box::new(change)),
        Err(error) => {
            tracing::warn!(%error, "unreadable group notification");
            Event::GroupNotificationError {
                group: node.optional_jid_attr("from").ok().flatten(),
                error,
            }
        }
    }
}

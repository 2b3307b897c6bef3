//! End to end: groups and communities administered through the client against the test server, which enforces
//! admin rights, and every change seen by the other members as typed events from `w:gp2` notifications. Real
//! sockets, SQLite stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use whatsapp_client::{
    ClientError, CreateGroup, Event, Events, GroupChange, GroupInfo, JoinOutcome, MemberAddMode, Node,
    ParticipantChange,
};
use whatsapp_testserver::{ServerEvent, TestServer};

const CAROL: &str = "15550000003";
const DAVE: &str = "15550000004";
/// A number with no WhatsApp account on the server.
const NOBODY: &str = "15550009999";

/// The next group change, skipping other events.
async fn next_change(events: &mut Events) -> GroupChange {
    match wait_for(events, "a group change", |e| matches!(e, Event::GroupChanged(_))).await {
        Event::GroupChanged(change) => *change,
        _ => unreachable!(),
    }
}

/// The next group change that `pred` accepts, skipping other events and changes.
async fn change_where(events: &mut Events, what: &str, pred: impl Fn(&GroupChange) -> bool) -> GroupChange {
    match wait_for(
        events,
        what,
        |e| matches!(e, Event::GroupChanged(change) if pred(change)),
    )
    .await
    {
        Event::GroupChanged(change) => *change,
        _ => unreachable!(),
    }
}

/// The error code of a refused request.
fn iq_code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Err(ClientError::Iq { code, .. }) => code,
        other => panic!("expected a refused request, got {other:?}"),
    }
}

fn member<'a>(info: &'a GroupInfo, number: &str) -> Option<&'a whatsapp_client::GroupParticipant> {
    info.participants.iter().find(|p| p.jid == user(number))
}

fn group_of(subject: &str, members: &[&str]) -> CreateGroup {
    CreateGroup {
        subject: subject.to_owned(),
        participants: members.iter().map(|m| user(m)).collect(),
        ..CreateGroup::default()
    }
}

#[tokio::test]
async fn create_read_list_and_leave() {
    let server = TestServer::start().await.unwrap();
    // Administration as seen in a group addressed by phone number (LID groups: tests/messaging.rs).
    server.create_pn_groups(true);
    let mut alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let carol = companion(&server, CAROL).await;

    let request = CreateGroup {
        ephemeral_timer: Some(86_400),
        ..group_of("Weekend", &[BOB, CAROL, NOBODY])
    };
    let created = alice.client.create_group(&request).await.unwrap();
    let group = created.jid.clone();
    assert!(group.is_group());
    assert_eq!(created.subject, "Weekend");
    assert_eq!(created.owner, Some(user(PHONE)));
    assert_eq!(created.ephemeral_timer, Some(86_400));
    assert_eq!(
        created.participants.len(),
        3,
        "the number without an account is not a member"
    );
    let owner = member(&created, PHONE).unwrap();
    assert!(owner.is_admin && owner.is_super_admin);
    assert!(!member(&created, BOB).unwrap().is_admin);

    // Bob is told he was added, with the group as it stands.
    let joined = match wait_for(&mut bob.events, "joined group", |e| {
        matches!(e, Event::JoinedGroup(_))
    })
    .await
    {
        Event::JoinedGroup(joined) => joined,
        _ => unreachable!(),
    };
    assert_eq!(joined.info.jid, group);
    assert_eq!(joined.sender, Some(user(PHONE)));

    // Bob reads the full metadata, with both addressing fields of each member.
    let info = bob.client.group_info(&group).await.unwrap();
    assert_eq!(
        (info.subject.as_str(), info.participant_count),
        ("Weekend", Some(3))
    );
    let bob_line = member(&info, BOB).unwrap();
    assert_eq!(bob_line.phone_number, Some(user(BOB)));
    assert_eq!(
        bob_line.lid.as_ref().map(|lid| lid.user().to_owned()),
        Some(server.add_phone(BOB).lid().user().to_owned())
    );
    assert!(info.created.is_some() && info.subject_set_at.is_some());

    let listed = bob.client.joined_groups().await.unwrap();
    assert_eq!(listed.iter().map(|g| &g.jid).collect::<Vec<_>>(), [&group]);
    assert_eq!(listed[0].participants.len(), 3);
    // A member can still send to the group.
    bob.client.send_text(&group, "hi all").await.unwrap();
    let (message_info, _) = next_message(&mut alice.events).await;
    assert_eq!(message_info.chat, group);

    bob.client.leave_group(&group).await.unwrap();
    let change = next_change(&mut alice.events).await;
    assert_eq!(
        (change.group.clone(), change.leave.clone()),
        (group.clone(), vec![user(BOB)])
    );
    assert_eq!(change.sender, Some(user(BOB)));
    assert!(bob.client.joined_groups().await.unwrap().is_empty());
    assert_eq!(iq_code(bob.client.group_info(&group).await), 403);
    assert_eq!(iq_code(bob.client.leave_group(&group).await), 403);
    assert_eq!(server.group_members(&group).unwrap(), [PHONE, CAROL]);
    drop(carol);
    let unknown = whatsapp_client::Jid::new("1203639999", whatsapp_client::Jid::GROUP_SERVER);
    assert_eq!(iq_code(alice.client.group_info(&unknown).await), 404);
}

#[tokio::test]
async fn participant_changes_follow_admin_rights() {
    let server = TestServer::start().await.unwrap();
    // Administration as seen in a group addressed by phone number (LID groups: tests/messaging.rs).
    server.create_pn_groups(true);
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let mut carol = companion(&server, CAROL).await;
    let group = alice
        .client
        .create_group(&group_of("Club", &[BOB]))
        .await
        .unwrap()
        .jid;

    // A member who is not an admin may not remove or promote anyone: the whole request is refused.
    assert_eq!(
        iq_code(
            bob.client
                .update_group_participants(&group, ParticipantChange::Remove, &[user(PHONE)])
                .await
        ),
        401
    );
    assert_eq!(
        iq_code(
            bob.client
                .update_group_participants(&group, ParticipantChange::Promote, &[user(BOB)])
                .await
        ),
        401
    );
    // Someone outside the group may not even read it.
    assert_eq!(iq_code(carol.client.group_info(&group).await), 403);

    // The admin adds: one line per participant, each with its own status.
    let lines = alice
        .client
        .update_group_participants(
            &group,
            ParticipantChange::Add,
            &[user(CAROL), user(BOB), user(NOBODY)],
        )
        .await
        .unwrap();
    let statuses: Vec<(String, u16)> = lines
        .iter()
        .map(|line| (line.jid.user().to_owned(), line.status()))
        .collect();
    assert_eq!(
        statuses,
        [
            (CAROL.to_owned(), 200),
            (BOB.to_owned(), 409),
            (NOBODY.to_owned(), 404)
        ]
    );
    let change = next_change(&mut bob.events).await;
    assert_eq!(change.join, [user(CAROL)]);
    assert_eq!(change.sender, Some(user(PHONE)));

    let promoted = alice
        .client
        .update_group_participants(&group, ParticipantChange::Promote, &[user(BOB)])
        .await
        .unwrap();
    assert_eq!(promoted[0].status(), 200);
    assert_eq!(next_change(&mut bob.events).await.promote, [user(BOB)]);
    assert!(
        member(&bob.client.group_info(&group).await.unwrap(), BOB)
            .unwrap()
            .is_admin
    );

    // Now an admin, Bob removes Carol, but not the creator.
    let removed = bob
        .client
        .update_group_participants(&group, ParticipantChange::Remove, &[user(CAROL), user(PHONE)])
        .await
        .unwrap();
    assert_eq!(removed.iter().map(|l| l.status()).collect::<Vec<_>>(), [200, 403]);
    // Carol saw herself added, then removed.
    assert_eq!(next_change(&mut carol.events).await.join, [user(CAROL)]);
    let change = change_where(&mut carol.events, "Carol's removal", |c| !c.leave.is_empty()).await;
    assert_eq!(
        (change.leave.clone(), change.sender.clone()),
        (vec![user(CAROL)], Some(user(BOB)))
    );
    assert_eq!(server.group_members(&group).unwrap(), [PHONE, BOB]);

    alice
        .client
        .update_group_participants(&group, ParticipantChange::Demote, &[user(BOB)])
        .await
        .unwrap();
    assert_eq!(next_change(&mut bob.events).await.demote, [user(BOB)]);
    // With adding limited to admins, Bob may not add Carol back.
    alice
        .client
        .set_group_member_add_mode(&group, &MemberAddMode::AdminAdd)
        .await
        .unwrap();
    assert_eq!(
        iq_code(
            bob.client
                .update_group_participants(&group, ParticipantChange::Add, &[user(CAROL)])
                .await
        ),
        401
    );
    let info = alice.client.group_info(&group).await.unwrap();
    assert_eq!(info.member_add_mode, Some(MemberAddMode::AdminAdd));
    assert!(!member(&info, BOB).unwrap().is_admin);
}

#[tokio::test]
async fn settings_changes_reach_members_as_events() {
    let server = TestServer::start().await.unwrap();
    // Administration as seen in a group addressed by phone number (LID groups: tests/messaging.rs).
    server.create_pn_groups(true);
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let mut server_events = server.subscribe();
    let group = alice
        .client
        .create_group(&group_of("Old name", &[BOB]))
        .await
        .unwrap()
        .jid;

    alice.client.set_group_subject(&group, "New name").await.unwrap();
    let change = next_change(&mut bob.events).await;
    let subject = change.subject.unwrap();
    assert_eq!(
        (subject.subject.as_str(), subject.set_by.clone()),
        ("New name", Some(user(PHONE)))
    );
    // Bob's device acknowledged the notification, so the server no longer holds it for him.
    server_wait(&mut server_events, "notification ack", |e| {
        matches!(e, ServerEvent::Acked { device, class, .. } if *device == bob.jid && class == "notification")
    })
    .await;

    alice
        .client
        .set_group_description(&group, "First rules")
        .await
        .unwrap();
    let first = next_change(&mut bob.events).await.topic.unwrap();
    assert_eq!(first.text, "First rules");
    // The second description names the first as its predecessor (the server refuses a stale one with 409).
    alice
        .client
        .set_group_description(&group, "Second rules")
        .await
        .unwrap();
    let second = next_change(&mut bob.events).await.topic.unwrap();
    assert_eq!(second.text, "Second rules");
    assert_ne!(second.id, first.id);

    alice.client.set_group_locked(&group, true).await.unwrap();
    assert_eq!(next_change(&mut bob.events).await.locked, Some(true));
    // Locked: only admins edit the group's information.
    assert_eq!(iq_code(bob.client.set_group_subject(&group, "Bob's").await), 401);
    assert_eq!(
        iq_code(bob.client.set_group_photo(&group, b"\xff\xd8\xff\xe0bob").await),
        401
    );
    // Settings are for admins whatever the lock.
    assert_eq!(iq_code(bob.client.set_group_announce(&group, true).await), 401);

    alice.client.set_group_announce(&group, true).await.unwrap();
    assert_eq!(next_change(&mut bob.events).await.announce, Some(true));
    alice.client.set_group_join_approval(&group, true).await.unwrap();
    assert_eq!(
        next_change(&mut bob.events).await.join_approval_required,
        Some(true)
    );
    alice
        .client
        .set_group_ephemeral(&group, Some(604_800))
        .await
        .unwrap();
    assert_eq!(next_change(&mut bob.events).await.ephemeral_timer, Some(604_800));

    let jpeg = b"\xff\xd8\xff\xe0 a tiny jpeg".to_vec();
    let picture_id = alice.client.set_group_photo(&group, &jpeg).await.unwrap();
    assert!(!picture_id.is_empty());
    assert_eq!(server.group_photo(&group), Some(jpeg));
    assert_eq!(
        iq_code(alice.client.set_group_photo(&group, b"GIF89a").await),
        406
    );

    let info = bob.client.group_info(&group).await.unwrap();
    assert_eq!(info.subject, "New name");
    assert_eq!(info.topic.unwrap().text, "Second rules");
    assert!(info.locked && info.announce && info.join_approval_required);
    assert_eq!(info.ephemeral_timer, Some(604_800));

    // Turning things back off is seen too.
    alice.client.set_group_announce(&group, false).await.unwrap();
    assert_eq!(next_change(&mut bob.events).await.announce, Some(false));
    alice.client.set_group_description(&group, "").await.unwrap();
    assert!(next_change(&mut bob.events).await.topic.unwrap().deleted);
    assert_eq!(bob.client.group_info(&group).await.unwrap().topic, None);
}

#[tokio::test]
async fn invite_links_reset_and_join() {
    let server = TestServer::start().await.unwrap();
    // Administration as seen in a group addressed by phone number (LID groups: tests/messaging.rs).
    server.create_pn_groups(true);
    let mut alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let carol = companion(&server, CAROL).await;
    let dave = companion(&server, DAVE).await;
    let group = alice
        .client
        .create_group(&group_of("Open", &[BOB]))
        .await
        .unwrap()
        .jid;

    assert_eq!(iq_code(bob.client.group_invite_link(&group, false).await), 401);
    let link = alice.client.group_invite_link(&group, false).await.unwrap();
    assert!(link.starts_with(whatsapp_client::INVITE_LINK_PREFIX));
    assert_eq!(alice.client.group_invite_link(&group, false).await.unwrap(), link);

    let preview = carol.client.group_info_from_link(&link).await.unwrap();
    assert_eq!(
        (preview.jid.clone(), preview.subject.as_str()),
        (group.clone(), "Open")
    );
    assert_eq!(
        carol.client.join_group_with_link(&link).await.unwrap(),
        JoinOutcome::Joined(group.clone())
    );
    let change = next_change(&mut alice.events).await;
    assert_eq!(
        (change.join.clone(), change.join_reason.as_deref()),
        (vec![user(CAROL)], Some("invite"))
    );
    assert!(member(&carol.client.group_info(&group).await.unwrap(), CAROL).is_some());

    let new_link = alice.client.group_invite_link(&group, true).await.unwrap();
    assert_ne!(new_link, link);
    // Bob saw Carol join, then the new link.
    assert_eq!(next_change(&mut bob.events).await.join, [user(CAROL)]);
    assert_eq!(
        next_change(&mut bob.events).await.invite_link,
        Some(new_link.clone())
    );
    // The old link is revoked (410), a made-up one invalid (406).
    assert_eq!(iq_code(dave.client.join_group_with_link(&link).await), 410);
    assert_eq!(iq_code(dave.client.group_info_from_link("NotACode").await), 406);
    assert_eq!(iq_code(dave.client.group_info(&group).await), 403);
    // The bare code works as well as the link.
    let code = new_link.trim_start_matches(whatsapp_client::INVITE_LINK_PREFIX);
    assert_eq!(
        dave.client.join_group_with_link(code).await.unwrap(),
        JoinOutcome::Joined(group.clone())
    );
    assert_eq!(server.group_members(&group).unwrap(), [PHONE, BOB, CAROL, DAVE]);
}

#[tokio::test]
async fn join_requests_wait_for_an_admin() {
    let server = TestServer::start().await.unwrap();
    // Administration as seen in a group addressed by phone number (LID groups: tests/messaging.rs).
    server.create_pn_groups(true);
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let carol = companion(&server, CAROL).await;
    let dave = companion(&server, DAVE).await;
    let request = CreateGroup {
        join_approval_required: true,
        ..group_of("Gated", &[BOB])
    };
    let created = alice.client.create_group(&request).await.unwrap();
    assert!(created.join_approval_required);
    let group = created.jid;
    let link = alice.client.group_invite_link(&group, false).await.unwrap();

    assert_eq!(
        carol.client.join_group_with_link(&link).await.unwrap(),
        JoinOutcome::Requested(group.clone())
    );
    assert_eq!(
        dave.client.join_group_with_link(&link).await.unwrap(),
        JoinOutcome::Requested(group.clone())
    );
    // Asking is not joining.
    assert_eq!(iq_code(carol.client.group_info(&group).await), 403);
    assert_eq!(iq_code(bob.client.group_join_requests(&group).await), 401);
    let pending = alice.client.group_join_requests(&group).await.unwrap();
    assert_eq!(
        pending.iter().map(|r| r.jid.clone()).collect::<Vec<_>>(),
        [user(CAROL), user(DAVE)]
    );
    assert!(pending.iter().all(|r| r.requested_at.is_some()));

    assert_eq!(
        iq_code(
            bob.client
                .answer_group_join_requests(&group, true, &[user(CAROL)])
                .await
        ),
        401
    );
    let approved = alice
        .client
        .answer_group_join_requests(&group, true, &[user(CAROL), user(BOB)])
        .await
        .unwrap();
    assert_eq!(
        approved.iter().map(|l| l.status()).collect::<Vec<_>>(),
        [200, 404]
    );
    assert_eq!(next_change(&mut bob.events).await.join, [user(CAROL)]);
    let rejected = alice
        .client
        .answer_group_join_requests(&group, false, &[user(DAVE)])
        .await
        .unwrap();
    assert_eq!(rejected[0].status(), 200);
    assert!(alice.client.group_join_requests(&group).await.unwrap().is_empty());
    assert!(member(&carol.client.group_info(&group).await.unwrap(), CAROL).is_some());
    assert_eq!(iq_code(dave.client.group_info(&group).await), 403);
}

#[tokio::test]
async fn communities_link_and_list_their_groups() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let community = CreateGroup {
        community: true,
        ..group_of("Neighbours", &[BOB])
    };
    let community = alice.client.create_group(&community).await.unwrap();
    assert!(community.is_parent);
    let community = community.jid;
    let linked = CreateGroup {
        linked_parent: Some(community.clone()),
        ..group_of("Garden", &[BOB])
    };
    let garden = alice.client.create_group(&linked).await.unwrap();
    assert_eq!(garden.linked_parent, Some(community.clone()));
    let garden = garden.jid;
    server.add_phone(CAROL);
    let market = alice
        .client
        .create_group(&group_of("Market", &[CAROL]))
        .await
        .unwrap()
        .jid;

    // Bob, not an admin of the community, may not link his own group to it.
    let bobs = bob
        .client
        .create_group(&group_of("Bob's", &[]))
        .await
        .unwrap()
        .jid;
    assert_eq!(iq_code(bob.client.link_group(&community, &bobs).await), 401);

    alice.client.link_group(&community, &market).await.unwrap();
    let change = change_where(&mut bob.events, "the link", |c| c.group == community).await;
    let link = change.link.unwrap();
    assert_eq!(
        (link.link_type.as_str(), link.group.jid.clone()),
        ("sub_group", market.clone())
    );

    let mut subs: Vec<String> = bob
        .client
        .sub_groups(&community)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.subject)
        .collect();
    subs.sort();
    assert_eq!(subs, ["Garden", "Market"]);
    let mut everyone: Vec<String> = alice
        .client
        .linked_groups_participants(&community)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.jid.user().to_owned())
        .collect();
    everyone.sort();
    let mut expected = vec![PHONE.to_owned(), BOB.to_owned(), CAROL.to_owned()];
    expected.sort();
    assert_eq!(everyone, expected);

    alice.client.unlink_group(&community, &garden).await.unwrap();
    let unlink = next_change(&mut bob.events).await.unlink.unwrap();
    assert_eq!(unlink.group.jid, garden);
    let subs = alice.client.sub_groups(&community).await.unwrap();
    assert_eq!(subs.iter().map(|g| g.jid.clone()).collect::<Vec<_>>(), [market]);
    assert_eq!(
        alice.client.group_info(&garden).await.unwrap().linked_parent,
        None
    );
}

#[tokio::test]
async fn a_malformed_group_notification_is_reported_and_the_connection_goes_on() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let group = alice
        .client
        .create_group(&group_of("Fine", &[BOB]))
        .await
        .unwrap()
        .jid;
    let bad = Node::new("notification")
        .attr("type", "w:gp2")
        .attr("id", "bad-1")
        .attr("from", group.clone())
        .attr("t", "1700000000")
        .children([Node::new("subject")]);
    assert!(server.send_stanza(&bob.jid, bad));
    match wait_for(&mut bob.events, "the notification error", |e| {
        matches!(e, Event::GroupNotificationError { .. })
    })
    .await
    {
        Event::GroupNotificationError { group: named, .. } => assert_eq!(named, Some(group.clone())),
        _ => unreachable!(),
    }
    alice
        .client
        .set_group_subject(&group, "Still fine")
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut bob.events).await.subject.unwrap().subject,
        "Still fine"
    );
}

/// Sends `text` to `group` from `client`; returns how many times `device` asked for the group's description
/// between the previous call and this message's routing.
async fn group_queries_for(
    client: &whatsapp_client::Client<whatsapp_client::sql::SqlBackend>,
    server_events: &mut whatsapp_testserver::ServerEvents,
    device: &whatsapp_client::Jid,
    group: &whatsapp_client::Jid,
    text: &str,
) -> usize {
    let sent = client.send_text(group, text).await.unwrap();
    events_until(
        server_events,
        text,
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == sent.id),
    )
    .await
    .iter()
    .filter(|e| matches!(e, ServerEvent::GroupInfoQueried { from, .. } if from == device))
    .count()
}

#[tokio::test]
async fn member_lists_are_remembered_and_follow_every_change() {
    const EVE: &str = "15550000005";
    let server = TestServer::start().await.unwrap();
    // Administration as seen in a group addressed by phone number (LID groups: tests/messaging.rs).
    server.create_pn_groups(true);
    let mut server_events = server.subscribe();
    let mut alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let mut carol = companion(&server, CAROL).await;
    let mut dave = companion(&server, DAVE).await;
    let mut eve = companion(&server, EVE).await;
    let group = alice
        .client
        .create_group(&group_of("Cached", &[BOB]))
        .await
        .unwrap()
        .jid;
    let (client, events) = (&alice.client, &mut server_events);

    // Asked for once, then remembered.
    assert_eq!(
        group_queries_for(client, events, &alice.jid, &group, "one").await,
        1
    );
    assert_eq!(
        group_queries_for(client, events, &alice.jid, &group, "two").await,
        0
    );
    wait_text(&mut bob.events, "two").await;

    // This device's own change (no notification comes back to it) drops the list.
    client
        .update_group_participants(&group, ParticipantChange::Add, &[user(CAROL)])
        .await
        .unwrap();
    assert_eq!(
        group_queries_for(client, events, &alice.jid, &group, "three").await,
        1
    );
    wait_text(&mut carol.events, "three").await;
    client
        .update_group_participants(&group, ParticipantChange::Promote, &[user(BOB)])
        .await
        .unwrap();
    assert_eq!(
        group_queries_for(client, events, &alice.jid, &group, "four").await,
        1
    );

    // Another member's change arrives as a notification, which drops the list before it is acknowledged.
    bob.client
        .update_group_participants(&group, ParticipantChange::Add, &[user(DAVE)])
        .await
        .unwrap();
    change_where(&mut alice.events, "Dave added", |change| {
        change.join.iter().any(|jid| jid.user() == DAVE)
    })
    .await;
    assert_eq!(
        group_queries_for(client, events, &alice.jid, &group, "five").await,
        1
    );
    wait_text(&mut dave.events, "five").await;

    // A member added without any notification: the ack's participant hash shows the list is stale, so the
    // members are asked for again and the new member's device gets the message with the sender key (routed to
    // it alone, after the first routing).
    server.add_group_member_silently(&group, EVE);
    let sent = client.send_text(&group, "six").await.unwrap();
    wait_text(&mut eve.events, "six").await;
    let routed = events_until(
        events,
        "the copy for the new member",
        |e| matches!(e, ServerEvent::MessageRouted { id, copies: 1, .. } if *id == sent.id),
    )
    .await;
    assert!(
        routed
            .iter()
            .any(|e| matches!(e, ServerEvent::GroupInfoQueried { from, .. } if *from == alice.jid)),
        "{routed:?}"
    );
    // Eve holds the key now: the next message is the skmsg alone, for everyone.
    let next = client.send_text(&group, "seven").await.unwrap();
    let routed = events_until(
        events,
        "seven",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == next.id),
    )
    .await;
    assert!(matches!(
        routed.last(),
        Some(ServerEvent::MessageRouted { pairwise: 0, .. })
    ));
    wait_text(&mut eve.events, "seven").await;
    for companion in [alice, bob, carol, dave, eve] {
        companion.client.disconnect().await;
    }
}

#[tokio::test]
async fn members_find_and_download_the_group_photo() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let bob = companion(&server, BOB).await;
    let carol = companion(&server, CAROL).await;
    let group = alice
        .client
        .create_group(&group_of("Photos", &[BOB]))
        .await
        .unwrap()
        .jid;

    // No photo yet.
    assert_eq!(
        iq_code(bob.client.profile_picture(&group, false, None).await),
        404
    );

    let jpeg = b"\xff\xd8\xff\xe0 the group's photo".to_vec();
    let picture_id = alice.client.set_group_photo(&group, &jpeg).await.unwrap();
    for preview in [false, true] {
        let picture = bob
            .client
            .profile_picture(&group, preview, None)
            .await
            .unwrap()
            .expect("a photo");
        assert_eq!(picture.id, picture_id);
        assert_eq!(picture.kind, if preview { "preview" } else { "image" });
        assert!(picture.direct_path.is_some());
        assert_eq!(bob.client.download_profile_picture(&picture).await.unwrap(), jpeg);
    }
    // Asking with the current id: not modified.
    assert_eq!(
        bob.client
            .profile_picture(&group, false, Some(&picture_id))
            .await
            .unwrap(),
        None
    );
    // Carol is not a member.
    assert_eq!(
        iq_code(carol.client.profile_picture(&group, false, None).await),
        401
    );

    // A new photo has a new id and new bytes.
    let second = b"\xff\xd8\xff\xe0 a newer photo".to_vec();
    let second_id = alice.client.set_group_photo(&group, &second).await.unwrap();
    assert_ne!(second_id, picture_id);
    let picture = alice
        .client
        .profile_picture(&group, false, Some(&picture_id))
        .await
        .unwrap()
        .expect("the new photo");
    assert_eq!(picture.id, second_id);
    assert_eq!(
        alice.client.download_profile_picture(&picture).await.unwrap(),
        second
    );

    // A URL the host does not serve is an HTTP error, not a panic or empty bytes.
    let gone = whatsapp_client::PictureInfo {
        url: picture.url.replace(".jpg", "-gone.jpg"),
        ..picture
    };
    assert!(matches!(
        alice.client.download_profile_picture(&gone).await,
        Err(ClientError::Http(_))
    ));
}

#[tokio::test]
async fn a_new_group_names_members_by_lid_with_the_phone_number_beside() {
    // Groups are created LID-addressed, as WhatsApp creates them today (whatsmeow `group.go` parseParticipant and
    // `notification.go` read the LID with `phone_number` / `participant_pn` beside).
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let carol = companion(&server, CAROL).await;
    let created = alice.client.create_group(&group_of("New", &[BOB])).await.unwrap();
    let group = created.jid.clone();
    assert_eq!(
        created.addressing_mode,
        Some(whatsapp_client::AddressingMode::Lid)
    );
    assert_eq!(created.owner, Some(alice.lid.to_non_ad()));
    assert_eq!(created.owner_pn, Some(user(PHONE)));
    let member = created
        .participants
        .iter()
        .find(|p| p.phone_number == Some(user(BOB)))
        .expect("Bob, with his phone number beside");
    assert_eq!(member.jid, bob.lid.to_non_ad());

    alice
        .client
        .update_group_participants(&group, ParticipantChange::Add, &[user(CAROL)])
        .await
        .unwrap();
    let change = change_where(&mut bob.events, "Carol added", |c| !c.join.is_empty()).await;
    assert_eq!(change.join, [carol.lid.to_non_ad()]);
    assert_eq!(change.sender.map(|s| s.to_non_ad()), Some(alice.lid.to_non_ad()));
    assert_eq!(change.sender_pn.map(|s| s.to_non_ad()), Some(user(PHONE)));

    // And the group's messages travel by LID: Bob reads Alice's message from her LID device.
    let sent = alice.client.send_text(&group, "by lid").await.unwrap();
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!((info.id, info.sender), (sent.id, alice.lid.clone()));
    assert_eq!(info.sender_alt, Some(alice.jid.clone()));
    assert_eq!(message.conversation.as_deref(), Some("by lid"));
}

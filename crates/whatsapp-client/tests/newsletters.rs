//! End to end: channels (newsletters) created, read, followed, muted and left through the client against the test
//! server, posts from the owner reaching followers live as events, reactions and views counted and pushed as live
//! updates, and posts refused to anyone but the owner. Real sockets, SQLite stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use whatsapp_client::{
    ClientError, Event, Events, Jid, LiveUpdate, Message, NEWSLETTER_LINK_PREFIX, NewsletterError,
    NewsletterMessage, NewsletterMetadata, NewsletterRole, ViewerMetadata,
};
use whatsapp_testserver::{ServerEvent, TestServer};

fn text(body: &str) -> Message {
    Message {
        conversation: Some(body.to_owned()),
        ..Default::default()
    }
}

fn listed(list: &[NewsletterMetadata], jid: &Jid) -> bool {
    list.iter().any(|channel| &channel.jid == jid)
}

fn viewer(role: NewsletterRole, muted: bool) -> Option<ViewerMetadata> {
    Some(ViewerMetadata { muted, role })
}

/// The GraphQL error code of a refused channel request.
fn graphql_code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u32 {
    match result {
        Err(ClientError::Newsletter(NewsletterError::GraphQl { code, .. })) => code,
        other => panic!("expected a GraphQL error, got {other:?}"),
    }
}

/// The error code of a refused stanza.
fn refused_code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Err(ClientError::Iq { code, .. }) => code,
        other => panic!("expected a refused stanza, got {other:?}"),
    }
}

async fn next_post(events: &mut Events, channel: &Jid) -> NewsletterMessage {
    match wait_for(
        events,
        "a channel post",
        |e| matches!(e, Event::NewsletterMessage { newsletter, .. } if newsletter == channel),
    )
    .await
    {
        Event::NewsletterMessage { message, .. } => *message,
        _ => unreachable!(),
    }
}

async fn live_update_where(
    events: &mut Events,
    what: &str,
    pred: impl Fn(&LiveUpdate) -> bool,
) -> LiveUpdate {
    match wait_for(
        events,
        what,
        |e| matches!(e, Event::NewsletterLiveUpdate(update) if pred(update)),
    )
    .await
    {
        Event::NewsletterLiveUpdate(update) => *update,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn channels_are_created_followed_muted_and_left() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let bob = companion(&server, BOB).await;
    // Bob's second device hears of what the first one does through `mex` notifications.
    let mut bob2 = companion(&server, BOB).await;

    let created = alice
        .client
        .create_newsletter("Rust news", "Releases and notes")
        .await
        .unwrap();
    let jid = created.jid.clone();
    assert!(jid.is_newsletter());
    assert_eq!(created.name.text, "Rust news");
    assert_eq!(created.viewer, viewer(NewsletterRole::Owner, false));

    let info = alice.client.newsletter_info(&jid).await.unwrap();
    assert_eq!(info.name.text, "Rust news");
    assert_eq!(info.description.text, "Releases and notes");
    assert!(!info.invite_code.is_empty());
    assert_eq!(info.invite_code, created.invite_code);
    assert_eq!(info.subscribers, 0);
    assert!(info.creation_time.is_some_and(|t| t > 0));
    assert_eq!(info.viewer, viewer(NewsletterRole::Owner, false));
    assert!(listed(
        &alice.client.subscribed_newsletters().await.unwrap(),
        &jid
    ));

    // Bob finds it by its invite link, without viewer metadata, and is a guest until he follows.
    let invited = bob
        .client
        .newsletter_info_with_invite(&format!("{NEWSLETTER_LINK_PREFIX}{}", info.invite_code))
        .await
        .unwrap();
    assert_eq!((&invited.jid, invited.name.text.as_str()), (&jid, "Rust news"));
    assert_eq!(invited.viewer, None);
    assert_eq!(
        bob.client.newsletter_info(&jid).await.unwrap().viewer,
        viewer(NewsletterRole::Guest, false)
    );
    assert!(!listed(&bob.client.subscribed_newsletters().await.unwrap(), &jid));

    bob.client.follow_newsletter(&jid).await.unwrap();
    match wait_for(&mut bob2.events, "a join notification", |e| {
        matches!(e, Event::NewsletterJoin(_))
    })
    .await
    {
        Event::NewsletterJoin(joined) => {
            assert_eq!((&joined.jid, joined.name.text.as_str()), (&jid, "Rust news"));
        }
        _ => unreachable!(),
    }
    assert!(listed(&bob.client.subscribed_newsletters().await.unwrap(), &jid));
    assert!(listed(&bob2.client.subscribed_newsletters().await.unwrap(), &jid));
    assert_eq!(alice.client.newsletter_info(&jid).await.unwrap().subscribers, 1);
    assert_eq!(
        bob.client.newsletter_info(&jid).await.unwrap().viewer,
        viewer(NewsletterRole::Subscriber, false)
    );

    bob.client.set_newsletter_muted(&jid, true).await.unwrap();
    wait_for(
        &mut bob2.events,
        "a mute notification",
        |e| matches!(e, Event::NewsletterMuteChange { newsletter, muted: true } if newsletter == &jid),
    )
    .await;
    assert_eq!(
        bob.client.newsletter_info(&jid).await.unwrap().viewer,
        viewer(NewsletterRole::Subscriber, true)
    );
    bob.client.set_newsletter_muted(&jid, false).await.unwrap();
    wait_for(
        &mut bob2.events,
        "an unmute notification",
        |e| matches!(e, Event::NewsletterMuteChange { newsletter, muted: false } if newsletter == &jid),
    )
    .await;
    assert_eq!(
        bob.client.newsletter_info(&jid).await.unwrap().viewer,
        viewer(NewsletterRole::Subscriber, false)
    );

    bob.client.unfollow_newsletter(&jid).await.unwrap();
    wait_for(&mut bob2.events, "a leave notification", |e| {
        matches!(e, Event::NewsletterLeave { newsletter, role: NewsletterRole::Subscriber } if newsletter == &jid)
    })
    .await;
    assert!(!listed(&bob.client.subscribed_newsletters().await.unwrap(), &jid));
    assert_eq!(
        bob.client.newsletter_info(&jid).await.unwrap().viewer,
        viewer(NewsletterRole::Guest, false)
    );
    assert_eq!(alice.client.newsletter_info(&jid).await.unwrap().subscribers, 0);

    // Refusals arrive as GraphQL errors.
    let unknown = Jid::new("120363999999999999", Jid::NEWSLETTER_SERVER);
    assert_eq!(graphql_code(alice.client.newsletter_info(&unknown).await), 404);
    assert_eq!(graphql_code(alice.client.follow_newsletter(&unknown).await), 404);
    assert_eq!(
        graphql_code(bob.client.newsletter_info_with_invite("no-such-code").await),
        404
    );
    assert_eq!(
        graphql_code(bob.client.set_newsletter_muted(&jid, true).await),
        403
    );
    assert_eq!(graphql_code(alice.client.unfollow_newsletter(&jid).await), 400);
    // A nameless channel is refused before anything is sent.
    assert!(matches!(
        alice.client.create_newsletter(" ", "").await,
        Err(ClientError::Newsletter(NewsletterError::Request(_)))
    ));
}

#[tokio::test]
async fn posts_reach_followers_live_and_collect_reactions_and_views() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let mut alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let jid = alice.client.create_newsletter("Daily", "").await.unwrap().jid;
    bob.client.follow_newsletter(&jid).await.unwrap();
    let duration = alice
        .client
        .subscribe_newsletter_live_updates(&jid)
        .await
        .unwrap();
    assert_eq!(duration.as_secs(), 300);

    let sent = alice
        .client
        .send_newsletter_message(&jid, &text("First post"))
        .await
        .unwrap();
    let post = next_post(&mut bob.events, &jid).await;
    assert_eq!(
        (post.server_id, post.id.as_str()),
        (sent.server_id, sent.id.as_str())
    );
    assert_eq!(post.message.as_deref(), Some(&text("First post")));
    assert!(post.timestamp > 0);
    // Bob's device acknowledged the post, so the server will not deliver it again.
    server_wait(&mut server_events, "bob's ack of the post", |e| {
        matches!(e, ServerEvent::Acked { device, class, id } if device == &bob.jid && class == "message" && id == &sent.id)
    })
    .await;

    bob.client
        .send_newsletter_reaction(&jid, post.server_id, "👍")
        .await
        .unwrap();
    let update = live_update_where(&mut alice.events, "the reaction count", |u| {
        u.messages
            .iter()
            .any(|m| m.server_id == sent.server_id && m.reactions.get("👍") == Some(&1))
    })
    .await;
    assert_eq!(update.jid, jid);
    bob.client
        .mark_newsletter_viewed(&jid, &[post.server_id])
        .await
        .unwrap();
    live_update_where(&mut alice.events, "the view count", |u| {
        u.messages
            .iter()
            .any(|m| m.server_id == sent.server_id && m.views == Some(1))
    })
    .await;

    // `send_message` to a channel JID posts too.
    alice.client.send_text(&jid, "Second post").await.unwrap();
    let second = next_post(&mut bob.events, &jid).await;
    assert_eq!(second.server_id, sent.server_id + 1);
    assert_eq!(second.message.as_deref(), Some(&text("Second post")));

    let listed = alice.client.newsletter_messages(&jid, 10, None).await.unwrap();
    assert_eq!(listed.len(), 2);
    let first = listed.iter().find(|m| m.server_id == sent.server_id).unwrap();
    assert_eq!(first.message.as_deref(), Some(&text("First post")));
    assert_eq!(first.reactions.get("👍"), Some(&1));
    assert_eq!(first.views, Some(1));
    let older = bob
        .client
        .newsletter_messages(&jid, 10, Some(second.server_id))
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|m| m.server_id).collect::<Vec<_>>(),
        vec![sent.server_id]
    );

    // An empty reaction takes Bob's back.
    bob.client
        .send_newsletter_reaction(&jid, post.server_id, "")
        .await
        .unwrap();
    let listed = alice.client.newsletter_messages(&jid, 10, None).await.unwrap();
    let first = listed.iter().find(|m| m.server_id == sent.server_id).unwrap();
    assert!(first.reactions.is_empty());

    // A follower that was offline gets the post when it comes back.
    bob.client.disconnect().await;
    let third = alice
        .client
        .send_newsletter_message(&jid, &text("While you were away"))
        .await
        .unwrap();
    bob.client.connect().await.unwrap();
    let late = next_post(&mut bob.events, &jid).await;
    assert_eq!(late.server_id, third.server_id);
}

#[tokio::test]
async fn only_the_owner_may_post() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let bob = companion(&server, BOB).await;
    let jid = alice
        .client
        .create_newsletter("Announcements", "")
        .await
        .unwrap()
        .jid;
    bob.client.follow_newsletter(&jid).await.unwrap();

    assert_eq!(refused_code(bob.client.send_text(&jid, "let me in").await), 403);
    server_wait(
        &mut server_events,
        "the refused post",
        |e| matches!(e, ServerEvent::MessageRefused { reason, .. } if reason.contains("not an admin")),
    )
    .await;
    assert!(
        alice
            .client
            .newsletter_messages(&jid, 10, None)
            .await
            .unwrap()
            .is_empty()
    );

    let unknown = Jid::new("120363999999999999", Jid::NEWSLETTER_SERVER);
    assert_eq!(
        refused_code(alice.client.send_newsletter_message(&unknown, &text("x")).await),
        404
    );
    assert_eq!(
        refused_code(bob.client.send_newsletter_reaction(&jid, 12345, "👍").await),
        404
    );
    assert!(matches!(
        alice.client.send_newsletter_message(&user(BOB), &text("x")).await,
        Err(ClientError::InvalidRequest(_))
    ));
}

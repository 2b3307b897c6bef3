//! End to end: a poll sent to a user and one to a group, votes on both, and the votes read back by the poll's
//! sender with the secret only the poll's recipients know. Real sockets, SQLite stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use whatsapp_client::{ClientError, option_hashes};
use whatsapp_testserver::TestServer;

const CAROL: &str = "15550000003";

#[tokio::test]
async fn poll_votes_travel_encrypted_and_decrypt_for_the_poll_sender() {
    let server = TestServer::start().await.unwrap();
    let Companion {
        client: alice,
        events: mut alice_events,
        ..
    } = companion(&server, PHONE).await;
    let Companion {
        client: bob,
        events: mut bob_events,
        ..
    } = companion(&server, BOB).await;
    let Companion {
        client: carol,
        events: mut carol_events,
        ..
    } = companion(&server, CAROL).await;

    // One to one.
    let sent = alice
        .send_poll(&user(BOB), "Lunch?", &["pizza", "sushi"], 1)
        .await
        .unwrap();
    let (poll, message) = next_message(&mut bob_events).await;
    assert_eq!(poll.id, sent.id);
    let creation = message.poll_creation_message.unwrap();
    assert_eq!(creation.name.as_deref(), Some("Lunch?"));
    assert_eq!(creation.options.len(), 2);
    bob.vote(&poll, &["sushi"]).await.unwrap();
    let (vote_info, vote) = next_message(&mut alice_events).await;
    let update = vote.poll_update_message.expect("a vote");
    assert_eq!(
        alice.decrypt_poll_vote(&vote_info, &update).await.unwrap(),
        option_hashes(&["sushi"])
    );
    // The vote is sealed to the poll's secret: a device that never saw the poll cannot read it.
    assert!(matches!(
        carol.decrypt_poll_vote(&vote_info, &update).await,
        Err(ClientError::MissingSecret)
    ));

    // In a group, every member votes on the poll and the sender reads each vote.
    let group = server.create_group("Team", &[PHONE, BOB, CAROL]);
    let sent = alice
        .send_poll(&group, "Release?", &["now", "later", "never"], 0)
        .await
        .unwrap();
    for (client, events, choice) in [
        (&bob, &mut bob_events, vec!["now", "later"]),
        (&carol, &mut carol_events, vec!["never"]),
    ] {
        let (poll, _) = next_message(events).await;
        assert_eq!((poll.id.as_str(), &poll.chat), (sent.id.as_str(), &group));
        client.vote(&poll, &choice).await.unwrap();
        let (vote_info, vote) = loop {
            let (info, message) = next_message(&mut alice_events).await;
            if message.poll_update_message.is_some() {
                break (info, message);
            }
        };
        let update = vote.poll_update_message.unwrap();
        assert_eq!(
            alice.decrypt_poll_vote(&vote_info, &update).await.unwrap(),
            option_hashes(&choice)
        );
    }
}

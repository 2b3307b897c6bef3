//! Fuzzes the engine's stanza readers on decoded nodes: classification of every incoming stanza, `pair-success`
//! parsing and checking, phone-code notifications, incoming messages, receipts and retry requests, edits, device
//! lists, prekey bundles, the prekey count, group info, media hosts and app-state sync answers and notifications,
//! group administration answers and `w:gp2` notifications, presence and chat states, calls, privacy settings,
//! blocklists and privacy tokens, user lookups, profile photos and business profiles, channel (newsletter)
//! answers, posts, live updates and `mex` notifications, and `<unavailable>` messages; and, reading the input as
//! a `Message`, poll votes, app-state key shares, the phone's placeholder resends and the stanza attributes a
//! message gets. Every reader may refuse its input but none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use whatsapp_binary::{Jid, NodeTree, unpack_frame};
use whatsapp_core::app_state;
use whatsapp_core::compose::EditKind;
use whatsapp_core::connection::Incoming;
use whatsapp_core::group::parse_group_info;
use whatsapp_core::media::parse_media_conn;
use whatsapp_core::message::IncomingMessage;
use whatsapp_core::pair::{PairClientType, complete_pair_success};
use whatsapp_core::pair_code::CodePairing;
use whatsapp_core::receipt::Receipt;
use whatsapp_core::retry::RetryRequest;
use whatsapp_core::secret::{Original, decrypt_poll_vote};
use whatsapp_core::call::CallStanza;
use whatsapp_core::group_admin::{self, ParticipantChange};
use whatsapp_core::group_notification::parse_group_notification;
use whatsapp_core::presence::{ChatPresence, PresenceUpdate};
use whatsapp_core::privacy::{self, Blocklist, BlocklistChange, PrivacySettings};
use whatsapp_core::{business, newsletter, placeholder, policy, prekeys, user, usync};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::Message;
use whatsapp_signal::{KeyPair, PrivateKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let sender = Jid::new("15551234567", Jid::DEFAULT_USER_SERVER);
        let original = Original {
            id: "3EB0FUZZ",
            sender: &sender,
            secret: &[3; 32],
        };
        if let Some(update) = &message.poll_update_message {
            let _ = decrypt_poll_vote(update, &original, &sender);
        }
        if let Some(share) = message.protocol_message.as_deref().and_then(app_state::key_share) {
            let _ = app_state::shared_keys(share);
        }
        if let Some(protocol) = message.protocol_message.as_deref() {
            let _ = placeholder::resend_response(protocol);
        }
        let _ = whatsapp_core::message::StanzaAttrs::of(&message);
    }
    let Ok(body) = unpack_frame(data) else {
        return;
    };
    let Ok(tree) = NodeTree::parse(&body) else {
        return;
    };
    let node = tree.root().to_node();
    let identity = KeyPair::from_private(PrivateKey::from_bytes([7; 32]));
    match Incoming::classify(&node) {
        Incoming::PairSuccess(Ok(success)) => {
            let _ = complete_pair_success(&success, &identity, &[9; 32]);
        }
        Incoming::CodePairingHello { notification, .. } => {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            let phone = Jid::new("15551234567", Jid::DEFAULT_USER_SERVER);
            let (mut pairing, _) = CodePairing::start(
                phone,
                &[1; 32],
                PairClientType::Chrome,
                "Chrome (Linux)",
                true,
                &mut rng,
            );
            // The reference check comes before the expensive code-key derivation; with a matching reference the
            // whole unwrap and bundle encryption run.
            let _ = pairing.handle_hello_response(notification);
            let _ = pairing.finish(notification, &identity, &mut rng);
        }
        _ => {}
    }
    let _ = IncomingMessage::parse(&node);
    let _ = placeholder::unavailable(&node);
    let _ = usync::parse_devices(&node);
    let _ = usync::DeviceNotification::parse(&node);
    let _ = prekeys::parse_bundles(&node);
    let _ = policy::parse_prekey_count(&node);
    let _ = Receipt::parse(&node);
    let _ = RetryRequest::parse(&node);
    let _ = EditKind::of(&node);
    let _ = parse_group_info(&node);
    let _ = app_state::parse_answer(&node);
    let _ = app_state::changed_collections(&node);
    let _ = parse_media_conn(&node);
    let _ = parse_group_notification(&node);
    let _ = group_admin::parse_group_info(&node);
    let _ = group_admin::parse_group_node(&node);
    let _ = group_admin::parse_participant(&node);
    let _ = group_admin::parse_joined_groups(&node);
    let _ = group_admin::parse_participant_change(&node, ParticipantChange::Add);
    let _ = group_admin::parse_participant_change(&node, ParticipantChange::Demote);
    let _ = group_admin::parse_join_requests(&node);
    let _ = group_admin::parse_join_request_action(&node, true);
    let _ = group_admin::parse_photo_id(&node);
    let _ = group_admin::parse_invite_link(&node);
    let _ = group_admin::parse_join_with_link(&node);
    let _ = group_admin::parse_linked_group(&node);
    let _ = group_admin::parse_sub_groups(&node);
    let _ = group_admin::parse_linked_groups_participants(&node);
    let _ = PresenceUpdate::parse(&node);
    let _ = ChatPresence::parse(&node);
    let _ = CallStanza::parse(&node);
    let _ = PrivacySettings::parse(&node);
    let _ = PrivacySettings::parse_answer(&node);
    let _ = Blocklist::parse_answer(&node);
    let _ = BlocklistChange::parse(&node);
    let _ = privacy::parse_account_sync(&node);
    let _ = privacy::parse_privacy_tokens(&node);
    let _ = user::parse_contacts(&node);
    let _ = user::parse_user_info(&node);
    let _ = user::parse_picture(&node, true);
    let _ = business::parse_business_profile(&node);
    let _ = newsletter::parse_info(&node);
    let _ = newsletter::parse_subscribed(&node);
    let _ = newsletter::parse_created(&node);
    let _ = newsletter::parse_mex_ok(&node);
    let _ = newsletter::parse_messages(&node);
    let _ = newsletter::parse_message(&node);
    let _ = newsletter::parse_incoming(&node);
    let _ = newsletter::parse_live_updates_duration(&node);
    let _ = newsletter::parse_live_update(&node);
    let _ = newsletter::parse_mex_notification(&node);
    let _ = newsletter::parse_post_ack(&node);
});

//! Connection policies with their numbers: keepalive timing and prekey refills (protocol-facts §3.3, §3.5).
//!
//! Both are plain state machines fed with times and counts, so a test can drive them through hours in
//! microseconds.

use std::time::Duration;

use rand_core::RngCore;
use whatsapp_binary::Node;

use crate::iq::Instant;

/// The shortest wait between two keepalive pings (protocol-facts §3.3).
pub const KEEPALIVE_INTERVAL_MIN: Duration = Duration::from_secs(20);
/// The longest wait between two keepalive pings (protocol-facts §3.3).
pub const KEEPALIVE_INTERVAL_MAX: Duration = Duration::from_secs(30);
/// How long a ping may wait for its answer (protocol-facts §3.3).
pub const KEEPALIVE_RESPONSE_DEADLINE: Duration = Duration::from_secs(10);
/// How long pings may keep failing before the connection is considered dead (protocol-facts §3.3).
pub const KEEPALIVE_MAX_FAIL_TIME: Duration = Duration::from_secs(180);

/// The keepalive numbers of one connection. The default is WhatsApp Web's (the constants above); a program on a
/// link where 3 minutes of silence is too long to notice a dead connection (or too short) can change them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveTiming {
    /// The shortest wait between two pings.
    pub interval_min: Duration,
    /// The longest wait between two pings (the wait is uniformly random in between).
    pub interval_max: Duration,
    /// How long a ping may wait for its answer.
    pub response_deadline: Duration,
    /// How long pings may keep failing before the connection is given up and made again.
    pub max_fail_time: Duration,
}

impl Default for KeepaliveTiming {
    fn default() -> Self {
        KeepaliveTiming {
            interval_min: KEEPALIVE_INTERVAL_MIN,
            interval_max: KEEPALIVE_INTERVAL_MAX,
            response_deadline: KEEPALIVE_RESPONSE_DEADLINE,
            max_fail_time: KEEPALIVE_MAX_FAIL_TIME,
        }
    }
}

/// What the keepalive policy asks the driver to do or tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepaliveEvent {
    /// A ping failed; `error_count` failures in a row so far.
    Timeout {
        /// Consecutive failures.
        error_count: u32,
    },
    /// A ping succeeded after failures.
    Restored,
    /// Pings have failed for longer than [`KeepaliveTiming::max_fail_time`] (by default
    /// [`KEEPALIVE_MAX_FAIL_TIME`]): reconnect.
    Reconnect,
}

/// Keepalive bookkeeping for one connection.
#[derive(Clone, Debug)]
pub struct Keepalive {
    timing: KeepaliveTiming,
    last_success: Instant,
    error_count: u32,
}

impl Keepalive {
    /// Starts counting at `now` (the connection was just established), with WhatsApp Web's timing.
    pub fn new(now: Instant) -> Keepalive {
        Keepalive::with_timing(now, KeepaliveTiming::default())
    }

    /// Starts counting at `now` with other numbers than WhatsApp Web's.
    pub fn with_timing(now: Instant, timing: KeepaliveTiming) -> Keepalive {
        Keepalive {
            timing,
            last_success: now,
            error_count: 0,
        }
    }

    /// The numbers this connection runs on.
    pub fn timing(&self) -> KeepaliveTiming {
        self.timing
    }

    /// The time of the next ping: a random time between the timing's shortest and longest interval after `now`
    /// (20 to 30 s by default).
    pub fn next_ping(&self, now: Instant, rng: &mut impl RngCore) -> Instant {
        let min = self.timing.interval_min;
        let span = self.timing.interval_max.saturating_sub(min).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            u64::from(rng.next_u32()) % span
        };
        now + min + Duration::from_millis(jitter)
    }

    /// The ping stanza: `<iq xmlns="w:p" type="get" to="s.whatsapp.net"/>` (the caller adds the id).
    pub fn ping() -> Node {
        Node::new("iq")
            .attr("xmlns", "w:p")
            .attr("type", "get")
            .attr("to", crate::server_jid())
    }

    /// Records a ping's answer.
    pub fn succeeded(&mut self, now: Instant) -> Option<KeepaliveEvent> {
        self.last_success = now;
        let restored = self.error_count > 0;
        self.error_count = 0;
        restored.then_some(KeepaliveEvent::Restored)
    }

    /// Records a ping that got no answer in time.
    pub fn failed(&mut self, now: Instant) -> Vec<KeepaliveEvent> {
        self.error_count += 1;
        let mut events = vec![KeepaliveEvent::Timeout {
            error_count: self.error_count,
        }];
        if now.saturating_sub(self.last_success) > self.timing.max_fail_time {
            events.push(KeepaliveEvent::Reconnect);
        }
        events
    }
}

/// Prekeys uploaded per refill (`WantedPreKeyCount`, protocol-facts §3.5).
pub const WANTED_PREKEY_COUNT: u32 = 50;
/// Below this many prekeys on the server, refill (`MinPreKeyCount`, protocol-facts §3.5).
pub const MIN_PREKEY_COUNT: u32 = 5;
/// The first upload of a new device (protocol-facts §3.5).
pub const INITIAL_PREKEY_COUNT: u32 = 812;
/// A refill within this long of the previous one is skipped when the server already holds enough.
pub const PREKEY_UPLOAD_GUARD: Duration = Duration::from_secs(600);

/// How many prekeys to upload, given the server's count, the number of prekeys this device has ever
/// generated and not had taken, and the time since the last upload (`None`: never).
pub fn prekeys_to_upload(server_count: u32, local_count: u32, since_last_upload: Option<Duration>) -> u32 {
    if server_count == 0 && local_count == 0 {
        return INITIAL_PREKEY_COUNT;
    }
    if since_last_upload.is_some_and(|elapsed| elapsed < PREKEY_UPLOAD_GUARD)
        && server_count >= WANTED_PREKEY_COUNT
    {
        return 0;
    }
    if server_count < MIN_PREKEY_COUNT || local_count < MIN_PREKEY_COUNT {
        WANTED_PREKEY_COUNT
    } else {
        0
    }
}

/// The `<iq xmlns="encrypt" type="get"><count/></iq>` that asks how many prekeys the server holds.
pub fn prekey_count_query() -> Node {
    Node::new("iq")
        .attr("xmlns", "encrypt")
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .children([Node::new("count")])
}

/// Reads the answer to [`prekey_count_query`].
pub fn parse_prekey_count(result: &Node) -> Option<u32> {
    result.child("count")?.optional_str_attr("value")?.parse().ok()
}

/// One prekey as uploaded: a 3-byte big-endian id and the 32-byte public key; signed prekeys add a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadKey {
    /// The key id (24 bits on the wire).
    pub id: u32,
    /// The public key.
    pub public: [u8; 32],
}

/// The prekey upload IQ (protocol-facts §3.5).
pub fn prekey_upload(
    registration_id: u32,
    identity_public: &[u8; 32],
    prekeys: &[UploadKey],
    signed_prekey: &UploadKey,
    signed_prekey_signature: &[u8; 64],
) -> Node {
    let key_node = |tag: &'static str, key: &UploadKey| {
        Node::new(tag).children([
            Node::new("id").bytes(key.id.to_be_bytes()[1..].to_vec()),
            Node::new("value").bytes(key.public.to_vec()),
        ])
    };
    let mut skey = key_node("skey", signed_prekey);
    if let whatsapp_binary::Content::Nodes(children) = &mut skey.content {
        children.push(Node::new("signature").bytes(signed_prekey_signature.to_vec()));
    }
    Node::new("iq")
        .attr("xmlns", "encrypt")
        .attr("type", "set")
        .attr("to", crate::server_jid())
        .children([
            Node::new("registration").bytes(registration_id.to_be_bytes().to_vec()),
            Node::new("type").bytes(vec![crate::payload::DJB_KEY_TYPE]),
            Node::new("identity").bytes(identity_public.to_vec()),
            Node::new("list").children(prekeys.iter().map(|k| key_node("key", k))),
            skey,
        ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn pings_are_20_to_30_seconds_apart() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let next = Keepalive::new(S(0)).next_ping(S(100), &mut rng);
            assert!(next >= S(120) && next < S(130), "{next:?}");
        }
    }

    #[test]
    fn reconnect_only_after_three_minutes_of_failures() {
        let mut keepalive = Keepalive::new(S(0));
        assert_eq!(
            keepalive.failed(S(30)),
            vec![KeepaliveEvent::Timeout { error_count: 1 }]
        );
        assert_eq!(
            keepalive.failed(S(180)),
            vec![KeepaliveEvent::Timeout { error_count: 2 }]
        );
        assert_eq!(
            keepalive.failed(S(181)),
            vec![
                KeepaliveEvent::Timeout { error_count: 3 },
                KeepaliveEvent::Reconnect
            ]
        );
        assert_eq!(keepalive.succeeded(S(200)), Some(KeepaliveEvent::Restored));
        assert_eq!(keepalive.succeeded(S(225)), None);
        assert_eq!(
            keepalive.failed(S(250)),
            vec![KeepaliveEvent::Timeout { error_count: 1 }]
        );
    }

    #[test]
    fn other_timing_changes_the_interval_and_the_give_up() {
        let timing = KeepaliveTiming {
            interval_min: Duration::from_millis(50),
            interval_max: Duration::from_millis(50),
            response_deadline: Duration::from_millis(20),
            max_fail_time: Duration::from_millis(300),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut keepalive = Keepalive::with_timing(S(0), timing);
        assert_eq!(
            keepalive.next_ping(S(1), &mut rng),
            S(1) + Duration::from_millis(50)
        );
        assert_eq!(
            keepalive.failed(Duration::from_millis(300)),
            vec![KeepaliveEvent::Timeout { error_count: 1 }]
        );
        assert_eq!(
            keepalive.failed(Duration::from_millis(301)),
            vec![
                KeepaliveEvent::Timeout { error_count: 2 },
                KeepaliveEvent::Reconnect
            ]
        );
        assert_eq!(keepalive.timing(), timing);
    }

    #[test]
    fn prekey_refill_policy() {
        assert_eq!(prekeys_to_upload(0, 0, None), 812, "a new device uploads 812");
        assert_eq!(
            prekeys_to_upload(4, 100, None),
            50,
            "under 5 on the server: refill 50"
        );
        assert_eq!(prekeys_to_upload(5, 100, None), 0);
        assert_eq!(
            prekeys_to_upload(60, 100, Some(S(60))),
            0,
            "recent upload and enough keys"
        );
        assert_eq!(
            prekeys_to_upload(3, 100, Some(S(60))),
            50,
            "the guard only holds when the server has 50"
        );
    }

    #[test]
    fn upload_stanza_layout() {
        let keys = [UploadKey {
            id: 0x0001_0203,
            public: [9; 32],
        }];
        let node = prekey_upload(
            0xAABB_CCDD,
            &[1; 32],
            &keys,
            &UploadKey {
                id: 1,
                public: [2; 32],
            },
            &[3; 64],
        );
        assert_eq!(
            node.child("registration")
                .unwrap()
                .content_bytes()
                .unwrap()
                .as_ref(),
            &[0xAA, 0xBB, 0xCC, 0xDD]
        );
        let key = node.child("list").unwrap().child("key").unwrap();
        assert_eq!(
            key.child("id").unwrap().content_bytes().unwrap().as_ref(),
            &[1, 2, 3]
        );
        assert_eq!(
            node.child("skey")
                .unwrap()
                .child("signature")
                .unwrap()
                .content_bytes()
                .unwrap()
                .len(),
            64
        );
    }
}

//! What the server says about the connection itself: `<success>`, `<failure>`, `<stream:error>` and `<ib>`
//! (protocol-facts §3.3), classified into what the client must do.

use std::time::Duration;

use whatsapp_binary::{Jid, Node};

/// The server accepted the login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginSuccess {
    /// The account's LID, when the server sends it.
    pub lid: Option<Jid>,
    /// The server's clock, in unix seconds, when it sent `<success>`.
    pub server_time: Option<i64>,
}

impl LoginSuccess {
    /// Reads a `<success>` stanza.
    pub fn parse(node: &Node) -> LoginSuccess {
        LoginSuccess {
            lid: node.optional_jid_attr("lid").ok().flatten(),
            server_time: node.optional_i64_attr("t").ok().flatten(),
        }
    }
}

/// The sub-reason of a temporary ban (`<failure reason="402" code=...>`, protocol-facts §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TempBanReason {
    /// 101: too many people sent reports.
    SentToTooManyPeople,
    /// 102: blocked by too many users.
    BlockedByUsers,
    /// 103: created too many groups.
    CreatedTooManyGroups,
    /// 104: sent the same message too often.
    SentTooManySameMessage,
    /// 106: broadcast list abuse.
    BroadcastList,
    /// Any other code.
    Other(u32),
}

impl From<u32> for TempBanReason {
    fn from(code: u32) -> Self {
        match code {
            101 => TempBanReason::SentToTooManyPeople,
            102 => TempBanReason::BlockedByUsers,
            103 => TempBanReason::CreatedTooManyGroups,
            104 => TempBanReason::SentTooManySameMessage,
            106 => TempBanReason::BroadcastList,
            other => TempBanReason::Other(other),
        }
    }
}

/// What the client does after the server ended or refused the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// `stream:error 515`: reconnect at once (the normal step after pairing).
    Reconnect,
    /// The device was removed or logged out: delete the store and do not reconnect.
    LoggedOut {
        /// The `<failure>` reason or stream error code.
        code: u32,
        /// Whether this came as a `<failure>` at login rather than a `stream:error` later.
        on_connect: bool,
    },
    /// Another connection took over this device: do not reconnect.
    StreamReplaced,
    /// The account is banned for a while: do not reconnect.
    TemporaryBan {
        /// Why.
        reason: TempBanReason,
        /// How long the ban lasts.
        expire: Duration,
    },
    /// `<failure reason="405">`: the announced version is too old. Do not reconnect with it.
    ClientOutdated,
    /// A transient server problem (503, 500): reconnect with backoff.
    ReconnectWithBackoff {
        /// The code the server gave.
        code: u32,
    },
    /// Anything else; the client stops and reports it.
    Unknown {
        /// The code, 0 when absent.
        code: u32,
        /// The stanza, for the report.
        node: Node,
    },
}

impl Disconnect {
    /// Whether the client should connect again by itself.
    pub fn reconnects(&self) -> bool {
        matches!(
            self,
            Disconnect::Reconnect | Disconnect::ReconnectWithBackoff { .. }
        )
    }
}

fn code_attr(node: &Node, key: &str) -> u32 {
    node.optional_str_attr(key)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Classifies a `<stream:error>`.
pub fn classify_stream_error(node: &Node) -> Disconnect {
    let code = code_attr(node, "code");
    let conflict = node.child("conflict").and_then(|c| c.optional_str_attr("type"));
    match (code, conflict) {
        (515, _) => Disconnect::Reconnect,
        (401, Some("device_removed")) => Disconnect::LoggedOut {
            code,
            on_connect: false,
        },
        (_, Some("replaced")) => Disconnect::StreamReplaced,
        (503, _) => Disconnect::ReconnectWithBackoff { code },
        _ => Disconnect::Unknown {
            code,
            node: node.clone(),
        },
    }
}

/// Classifies a `<failure reason=...>` answer to the login.
pub fn classify_failure(node: &Node) -> Disconnect {
    let reason = code_attr(node, "reason");
    match reason {
        401 | 403 | 406 => Disconnect::LoggedOut {
            code: reason,
            on_connect: true,
        },
        402 => Disconnect::TemporaryBan {
            reason: TempBanReason::from(code_attr(node, "code")),
            expire: Duration::from_secs(u64::from(code_attr(node, "expire"))),
        },
        405 => Disconnect::ClientOutdated,
        500 | 503 => Disconnect::ReconnectWithBackoff { code: reason },
        _ => Disconnect::Unknown {
            code: reason,
            node: node.clone(),
        },
    }
}

/// Delay before an automatic reconnect after `attempt` failed attempts: 2 s per attempt, as whatsmeow does
/// (protocol-facts §3.3), capped at five minutes, plus up to a quarter more scaled by `jitter_fraction` (a random
/// number in 0..1 the caller draws) so that many clients dropped together do not return together.
pub fn reconnect_delay(attempt: u32, jitter_fraction: f64) -> Duration {
    const CAP: Duration = Duration::from_secs(300);
    let base = Duration::from_secs(2).saturating_mul(attempt).min(CAP);
    base + base.mul_f64(jitter_fraction.clamp(0.0, 1.0) * 0.25)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_error(code: &'static str) -> Node {
        Node::new("stream:error").attr("code", code)
    }

    #[test]
    fn stream_errors() {
        assert_eq!(classify_stream_error(&stream_error("515")), Disconnect::Reconnect);
        let removed = stream_error("401").children([Node::new("conflict").attr("type", "device_removed")]);
        assert_eq!(
            classify_stream_error(&removed),
            Disconnect::LoggedOut {
                code: 401,
                on_connect: false
            }
        );
        let replaced = Node::new("stream:error").children([Node::new("conflict").attr("type", "replaced")]);
        assert_eq!(classify_stream_error(&replaced), Disconnect::StreamReplaced);
        assert_eq!(
            classify_stream_error(&stream_error("503")),
            Disconnect::ReconnectWithBackoff { code: 503 }
        );
        assert!(matches!(
            classify_stream_error(&stream_error("999")),
            Disconnect::Unknown { code: 999, .. }
        ));
    }

    #[test]
    fn login_failures() {
        let failure = |reason: &'static str| Node::new("failure").attr("reason", reason);
        for reason in ["401", "403", "406"] {
            assert!(matches!(
                classify_failure(&failure(reason)),
                Disconnect::LoggedOut { on_connect: true, .. }
            ));
        }
        assert_eq!(classify_failure(&failure("405")), Disconnect::ClientOutdated);
        let ban = failure("402").attr("code", "103").attr("expire", "3600");
        assert_eq!(
            classify_failure(&ban),
            Disconnect::TemporaryBan {
                reason: TempBanReason::CreatedTooManyGroups,
                expire: Duration::from_secs(3600)
            }
        );
        assert!(classify_failure(&failure("503")).reconnects());
        assert!(!classify_failure(&failure("405")).reconnects());
    }

    #[test]
    fn reconnect_delay_grows_linearly_with_bounded_jitter() {
        assert_eq!(reconnect_delay(0, 0.5), Duration::ZERO);
        assert_eq!(reconnect_delay(3, 0.0), Duration::from_secs(6));
        let jittered = reconnect_delay(3, 1.0);
        assert!(jittered > Duration::from_secs(6) && jittered <= Duration::from_millis(7500));
        assert_eq!(reconnect_delay(10_000, 0.0), Duration::from_secs(300));
    }

    #[test]
    fn success_carries_lid_and_time() {
        let node = Node::new("success")
            .attr("lid", Jid::new("123", Jid::LID_SERVER))
            .attr("t", "1700000000");
        let success = LoginSuccess::parse(&node);
        assert_eq!(success.lid, Some(Jid::new("123", Jid::LID_SERVER)));
        assert_eq!(success.server_time, Some(1_700_000_000));
    }
}

//! Outgoing message pacing: an optional token bucket every send waits on before it encrypts.
//!
//! WhatsApp bans accounts that send in bulk, and a program can send far faster than a person. With
//! [`ClientBuilder::send_rate_limit`](crate::ClientBuilder::send_rate_limit) each message send takes one token
//! first; tokens refill at `per_second` up to `burst`. The wait happens before device lists are fetched and
//! anything is encrypted, so a caller that sends faster than the limit simply waits in its own task: nothing
//! queues inside the client, and no Signal state advances for a message that is not yet going out. Off by
//! default.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket on tokio's clock. Waiters are served in the order they call [`SendPacer::acquire`] (the
/// mutex is fair), each holding it while it sleeps for its token.
#[derive(Debug)]
pub(crate) struct SendPacer {
    interval: Duration,
    burst: u32,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl SendPacer {
    /// A bucket refilling `per_second` tokens a second, holding at most `burst` (at least 1), full at first.
    /// `None` when `per_second` is not a positive finite number.
    pub(crate) fn new(per_second: f64, burst: u32) -> Option<SendPacer> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        let burst = burst.max(1);
        Some(SendPacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            burst,
            state: Mutex::new(Bucket {
                tokens: f64::from(burst),
                updated: Instant::now(),
            }),
        })
    }

    /// Waits until a token is free and takes it.
    pub(crate) async fn acquire(&self) {
        let mut bucket = self.state.lock().await;
        let now = Instant::now();
        let refill = now.duration_since(bucket.updated).as_secs_f64() / self.interval.as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(f64::from(self.burst));
        bucket.updated = now;
        if bucket.tokens < 1.0 {
            let wait = self.interval.mul_f64(1.0 - bucket.tokens);
            tokio::time::sleep(wait).await;
            bucket.tokens = 1.0;
            bucket.updated = now + wait;
        }
        bucket.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_meaningless_rates() {
        assert!(SendPacer::new(0.0, 5).is_none());
        assert!(SendPacer::new(-1.0, 5).is_none());
        assert!(SendPacer::new(f64::NAN, 5).is_none());
        assert!(SendPacer::new(f64::INFINITY, 5).is_none());
    }

    /// With the clock paused, time moves only when every task waits on a timer, so the instants at which
    /// permits are granted are exact: the burst at once, then one per interval, in call order.
    #[tokio::test(start_paused = true)]
    async fn burst_then_one_per_interval_in_order() {
        let pacer = std::sync::Arc::new(SendPacer::new(2.0, 3).unwrap());
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..6u32 {
            let pacer = std::sync::Arc::clone(&pacer);
            let tx = tx.clone();
            tokio::spawn(async move {
                pacer.acquire().await;
                tx.send((n, start.elapsed())).unwrap();
            });
            // Each task reaches the fair mutex before the next is spawned.
            tokio::task::yield_now().await;
        }
        drop(tx);
        let mut granted = Vec::new();
        while let Some(permit) = rx.recv().await {
            granted.push(permit);
        }
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(
            granted,
            vec![
                (0, ms(0)),
                (1, ms(0)),
                (2, ms(0)),
                (3, ms(500)),
                (4, ms(1000)),
                (5, ms(1500))
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_the_burst_only() {
        let pacer = SendPacer::new(10.0, 2).unwrap();
        pacer.acquire().await;
        pacer.acquire().await;
        tokio::time::advance(Duration::from_secs(60)).await;
        let start = Instant::now();
        pacer.acquire().await;
        pacer.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
}

//! Time for tests of engines and SIP servers on a manual clock ([`ManualClock`]): no timer
//! fires by itself; a test moves the clock forward and every engine and SIP stack it names
//! runs what fell due before the test goes on. So no test sleeps to wait for an expiry, a
//! refresh, a retransmission or a timeout (STYLE.md), and none needs shortened timers.

use std::time::Duration;

use impp::engine::{Engine, ManualClock};
use impp::sip::transaction::Timers;
use impp::sip::SipServer;

/// Settles what is under way at the current time, moves `clock` forward by `by`, then runs
/// what fell due at the new time: see [`sync`]. Settling first matters: a change still on
/// its way to a SIP role when the clock moves would be timed from the new time.
pub fn advance(clock: &ManualClock, by: Duration, engines: &[&Engine], servers: &[&SipServer]) {
    sync(engines, servers);
    clock.advance(by);
    sync(engines, servers);
}

/// Runs what is due at the clock's current time: each engine's timers (expiry of
/// subscriptions, publications and logins, the message hand-over bound), then each SIP
/// stack's (retransmissions, transaction timeouts, the refreshes and retries of the
/// user-agent role, Retry-After waits), then the engines again for what the stacks handed
/// them. Returns once all of it ran.
pub fn sync(engines: &[&Engine], servers: &[&SipServer]) {
    for engine in engines {
        engine.sync().unwrap();
    }
    for server in servers {
        assert!(server.sync(), "the SIP stack's timer thread stopped");
    }
    for engine in engines {
        engine.sync().unwrap();
    }
}

/// The steps from the start of a non-INVITE client transaction over UDP to its timer F
/// (64·T1): each ends where timer E fires (T1, then doubling up to T2), the last at F. Taken
/// one by one, they let every retransmission happen, which one jump to F would skip.
pub fn timer_e_steps(timers: &Timers) -> Vec<Duration> {
    let (mut steps, mut at, mut interval) = (Vec::new(), Duration::ZERO, timers.t1);
    while at < timers.timeout() {
        let step = interval.min(timers.timeout() - at);
        steps.push(step);
        at += step;
        interval = (interval * 2).min(timers.t2);
    }
    steps
}

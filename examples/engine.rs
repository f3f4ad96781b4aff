//! The presence engine from Rust: Bob asks to watch Alice, Alice lets him, Alice publishes
//! that her phone is open, and later her publication expires. After each step the program
//! polls the engine's events and prints them.
//!
//! Run it with `cargo run --example engine`. The engine runs on a manual clock, so "later"
//! is a function call, not a sleep.

use std::time::Duration;

use impp::doc::pidf::{Basic, Presence, Tuple};
use impp::engine::{
    AuthAction, Document, Engine, EngineConfig, Event, ManualClock, OutgoingMessage, Package,
    SubscribeRequest,
};
use impp::uri::Uri;

/// Waits until the engine has handled every earlier call, then prints every waiting event.
fn print_events(engine: &Engine, step: &str) -> impp::Result<()> {
    println!("{step}");
    engine.sync()?;
    // A zero timeout: take what is queued, never wait.
    while let Some(event) = engine.next_event(Some(Duration::ZERO)) {
        match event {
            Event::AuthorizationRequested {
                subscription,
                watcher,
                ..
            } => println!("  authorization requested  sub={subscription} by {watcher}"),
            Event::SubscriptionStateChanged {
                subscription,
                state,
                ..
            } => println!(
                "  subscription state       sub={subscription} state={}",
                state.as_str()
            ),
            Event::PublicationExpired {
                presentity, etag, ..
            } => {
                println!("  publication expired      {presentity} (entity tag {etag})")
            }
            Event::Notification(n) => {
                print!(
                    "  notification             sub={} state={}",
                    n.subscription,
                    n.state.as_str()
                );
                // The document is there only when the watcher may see it (not while pending).
                if let Some(Document::Presence(doc)) = n.document.as_deref() {
                    print!(" | {} sees", n.watcher);
                    if doc.tuples.is_empty() {
                        print!(" nothing published");
                    }
                    for tuple in &doc.tuples {
                        let basic = tuple.status.basic.map_or("unset", Basic::as_str);
                        print!(" {}={basic}", tuple.id);
                    }
                }
                println!();
            }
            Event::Message(m) => println!(
                "  message                  #{} from {} to {} ({}): {}",
                m.id,
                m.sender,
                m.endpoint,
                m.content_type,
                String::from_utf8_lossy(&m.body)
            ),
            Event::Delivery(d) => println!(
                "  delivery                 #{} to {}: {}{}",
                d.message,
                d.recipient,
                d.outcome.as_str(),
                d.outcome
                    .reason()
                    .map_or(String::new(), |r| format!(" ({})", r.as_str()))
            ),
            Event::EndpointExpired { user, endpoint } => {
                println!("  endpoint expired         {endpoint} of {user}")
            }
            // Event is non-exhaustive: later versions may tell more.
            _ => println!("  (another event)"),
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Watchers need Alice's consent (confirm); time only moves when the program says so.
    let clock = ManualClock::new();
    let engine = Engine::new(EngineConfig {
        workers: 2,
        domains: vec!["example.test".into()],
        default_policy: AuthAction::Confirm,
        clock: clock.clone(),
        ..EngineConfig::default()
    })?;
    let alice: Uri = "sip:alice@example.test".parse()?;
    let bob: Uri = "sip:bob@example.test".parse()?;

    // 1. Bob subscribes to Alice's presence: pending until Alice decides.
    let sub = engine.subscribe(SubscribeRequest::new(
        bob.clone(),
        alice.clone(),
        Package::Presence,
    ))?;
    print_events(&engine, "Bob subscribes to Alice:")?;

    // 2. Alice allows Bob: he becomes active (she has published nothing yet).
    engine.authorize(sub, AuthAction::Allow)?;
    print_events(&engine, "Alice authorizes Bob:")?;

    // 3. Alice publishes a document for 60 seconds: Bob is notified.
    let mut doc = Presence::new(alice.to_string());
    doc.tuples.push(Tuple::new("phone", Basic::Open));
    let etag = engine.publish(&alice, Document::Presence(doc), Some(60))?;
    println!("(publication entity tag: {etag})");
    print_events(&engine, "Alice publishes her phone as open:")?;

    // 4. A minute passes without a refresh: the publication expires, Bob is told.
    clock.advance(Duration::from_secs(61));
    print_events(&engine, "61 seconds later:")?;

    // 5. Alice writes to Bob, who is offline: the message is stored for him ("stored");
    //    when his phone logs in, it is delivered ("delivered").
    engine.send_message(OutgoingMessage::new(
        alice.clone(),
        bob.clone(),
        "text/plain",
        "Lunch at noon?",
    ))?;
    print_events(&engine, "Alice writes to Bob while he is offline:")?;
    engine.login(&bob, "phone", None)?;
    print_events(&engine, "Bob's phone logs in:")?;

    let stats = engine.stats();
    println!(
        "active subscriptions: {}, publications: {}",
        stats.subscriptions_active, stats.publications
    );
    // Dropping the engine shuts it down and joins its threads.
    Ok(())
}

//! `imppd rule add|del|list`: the authorization rules in imppd's SQLite store, and the
//! running server's reload of them on SIGHUP.
//!
//! A rule names a presentity (a URI), a watcher (a URI, or a bare domain meaning every
//! watcher whose URI host is that domain) and an action. The commands write the store the
//! server reads at start and on SIGHUP; they check everything before writing, so bad input
//! changes nothing. Listed rules are printed as `PRESENTITY WATCHER ACTION [TARGET]`, the
//! arguments of `rule add` (a `redirect` names the presence agent it sends watchers to).

use std::io::Write as _;
use std::path::Path;

use impp::engine::authorization::RuleBook;
use impp::engine::{AuthAction, AuthRule, Engine, WatcherMatch};
use impp::store::{SqliteStore, Store};
use impp::uri::Uri;

/// A rule's watcher as `rule add` takes it and `rule list` prints it.
pub fn watcher_text(watcher: &WatcherMatch) -> String {
    match watcher {
        WatcherMatch::Watcher(uri) => uri.to_string(),
        WatcherMatch::Domain(domain) => domain.clone(),
    }
}

/// A rule as `rule add` takes it: `PRESENTITY WATCHER ACTION [TARGET]`.
pub fn rule_text(rule: &AuthRule) -> String {
    let mut text = format!(
        "{} {} {}",
        rule.presentity,
        watcher_text(&rule.watcher),
        rule.action
    );
    if let Some(target) = &rule.target {
        text.push(' ');
        text.push_str(&target.to_string());
    }
    text
}

/// The rule `PRESENTITY WATCHER|DOMAIN ACTION [TARGET]` says (`args`, four words, or five
/// for `redirect TARGET`), checked whole.
pub fn parse_rule(args: &[String]) -> Result<AuthRule, String> {
    let (presentity, watcher, action) = match args {
        [p, w, a] | [p, w, a, _] => (p, w, a),
        _ => {
            return Err(
                "a rule is PRESENTITY WATCHER|DOMAIN allow|block|polite-block|confirm, or PRESENTITY WATCHER|DOMAIN redirect TARGET".into(),
            )
        }
    };
    let presentity = parse_presentity(presentity)?;
    let watcher = parse_watcher(watcher)?;
    let action: AuthAction = action.parse().map_err(|e: impp::Error| e.to_string())?;
    let rule = match (action, args.get(3)) {
        (AuthAction::Redirect, Some(target)) => {
            let target = Uri::parse(target).map_err(|e| format!("target '{target}': {e}"))?;
            AuthRule::redirect(presentity, watcher, target)
        }
        (AuthAction::Redirect, None) => {
            return Err("redirect needs the TARGET presence agent's URI after it".into())
        }
        (_, Some(extra)) => return Err(format!("{action} takes no target (got '{extra}')")),
        (_, None) => AuthRule::new(presentity, watcher, action),
    };
    rule.check().map_err(|e| e.to_string())?;
    Ok(rule)
}

/// A URI (it has a scheme: `sip:bob@example.test`), or a bare domain (`example.test`:
/// every watcher of that domain). `bob@example.test`, without a scheme, is neither.
pub fn parse_watcher(text: &str) -> Result<WatcherMatch, String> {
    if text.contains(':') {
        return Uri::parse(text)
            .map(WatcherMatch::Watcher)
            .map_err(|e| format!("watcher '{text}': {e}"));
    }
    // A domain is what a URI's host may be: parse it as one and insist nothing else came.
    let as_host = Uri::parse(&format!("sip:{text}")).ok();
    match as_host {
        Some(uri)
            if !text.contains('@')
                && uri.user().is_none()
                && uri.port().is_none()
                && uri.params().is_empty()
                && uri.headers().is_empty()
                && uri.host().eq_ignore_ascii_case(text) =>
        {
            Ok(WatcherMatch::Domain(text.to_ascii_lowercase()))
        }
        _ => Err(format!(
            "watcher '{text}' is neither a URI (sip:bob@example.test) nor a domain (example.test)"
        )),
    }
}

pub fn parse_presentity(text: &str) -> Result<Uri, String> {
    Uri::parse(text).map_err(|e| format!("presentity '{text}': {e}"))
}

/// The stored rules, by presentity and slot.
fn stored_book(store: &dyn Store) -> Result<RuleBook, String> {
    let mut book = RuleBook::new();
    for rule in store.load_rules().map_err(|e| e.to_string())? {
        book.set(rule);
    }
    Ok(book)
}

/// `imppd rule add|del|list ...` on the store `db`.
pub fn command(db: &Path, args: &[String]) -> Result<(), String> {
    let arg = |i: usize, what: &str| -> Result<&str, String> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("rule {} needs {what}", args[0]))
    };
    let extra = |n: usize| -> Result<(), String> {
        match args.get(n) {
            Some(more) => Err(format!("rule {}: unexpected argument '{more}'", args[0])),
            None => Ok(()),
        }
    };
    match args.first().map(String::as_str) {
        Some("add") => {
            arg(
                3,
                "an action: allow, block, polite-block, confirm or redirect TARGET",
            )?;
            let rule = parse_rule(&args[1..])?;
            let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
            let before = stored_book(&store)?
                .get(&rule.presentity, &rule.watcher)
                .map(|r| r.action);
            store.save_rule(&rule).map_err(|e| e.to_string())?;
            match before {
                None => println!("added {}", rule_text(&rule)),
                Some(old) => println!("replaced {} (was {old})", rule_text(&rule)),
            }
            Ok(())
        }
        Some("del") => {
            let presentity = parse_presentity(arg(1, "a presentity URI")?)?;
            let watcher = parse_watcher(arg(2, "a watcher URI or domain")?)?;
            extra(3)?;
            let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
            let Some(rule) = stored_book(&store)?.get(&presentity, &watcher).cloned() else {
                return Err(format!(
                    "{presentity} has no rule for {}: nothing deleted",
                    watcher_text(&watcher)
                ));
            };
            store
                .delete_rule(&presentity, &watcher)
                .map_err(|e| e.to_string())?;
            println!("deleted {}", rule_text(&rule));
            Ok(())
        }
        Some("list") => {
            let presentity = args.get(1).map(|p| parse_presentity(p)).transpose()?;
            extra(2)?;
            let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
            let book = stored_book(&store)?;
            let rules = match &presentity {
                Some(p) => book.rules_for(p),
                None => book.rules(),
            };
            for rule in rules {
                println!("{}", rule_text(&rule));
            }
            Ok(())
        }
        _ => Err("rule: add, del or list".into()),
    }
}

/// Makes the engine's rules what the store `db` holds now (after `imppd rule add`/`del` ran
/// beside the server), read through a second connection as the users are; logs each change.
/// Returns how many rules were added or changed, and how many removed.
pub fn reload(db: &Path, engine: &Engine) -> Result<(usize, usize), String> {
    let stored = SqliteStore::open(db)
        .and_then(|s| s.load_rules())
        .map_err(|e| e.to_string())?;
    let mut current = RuleBook::new();
    for rule in engine.all_rules().map_err(|e| e.to_string())? {
        current.set(rule);
    }
    let log = |what: &str| {
        let _ = writeln!(std::io::stderr(), "imppd: rule {what}");
    };
    let (mut added, mut removed) = (0, 0);
    let mut wanted = RuleBook::new();
    for rule in stored {
        let was = current
            .get(&rule.presentity, &rule.watcher)
            .map(|r| (r.action, r.target.clone()));
        if was.as_ref().map(|(a, t)| (*a, t)) != Some((rule.action, &rule.target)) {
            let was = was.map(|(a, _)| a);
            engine.set_rule(rule.clone()).map_err(|e| e.to_string())?;
            added += 1;
            match was {
                None => log(&format!("added: {}", rule_text(&rule))),
                Some(old) => log(&format!("changed: {} (was {old})", rule_text(&rule))),
            }
        }
        wanted.set(rule);
    }
    for rule in current.rules() {
        if wanted.get(&rule.presentity, &rule.watcher).is_none()
            && engine
                .remove_rule(&rule.presentity, &rule.watcher)
                .map_err(|e| e.to_string())?
        {
            removed += 1;
            log(&format!("removed: {}", rule_text(&rule)));
        }
    }
    Ok((added, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_are_uris_or_bare_domains() {
        let uri = |s: &str| WatcherMatch::Watcher(Uri::parse(s).unwrap());
        assert_eq!(
            parse_watcher("sip:bob@example.test").unwrap(),
            uri("sip:bob@example.test")
        );
        assert_eq!(
            parse_watcher("Other.Test").unwrap(),
            WatcherMatch::Domain("other.test".into())
        );
        assert_eq!(
            parse_watcher("192.0.2.7").unwrap(),
            WatcherMatch::Domain("192.0.2.7".into())
        );
        for bad in [
            "",
            "bob@example.test",
            "example.test;x=1",
            "exa mple.test",
            "sip:",
            "example.test?a=b",
        ] {
            assert!(parse_watcher(bad).is_err(), "{bad:?}");
        }
    }
}

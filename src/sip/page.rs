//! Page-mode messages (RFC 3428) between SIP and the engine, for every role that carries
//! them (the pager, the accounts): a MESSAGE request read as an engine message, an engine
//! message written as a new MESSAGE request, and what the answer to a MESSAGE sent to
//! another domain means for its sender.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use super::stack::{Reply, Request, Stack};
use super::transport::Proto;
use crate::engine::{DeliveryOutcome, EngineConfig, FailureReason, Message, OutgoingMessage};
use crate::error::Result;
use crate::uri::Uri;

/// The message a MESSAGE request carries, from `sender` to `recipient` (its content type
/// as written, its body, In-Reply-To), or the answer refusing it: `400` without a body,
/// `413` over the size limit.
pub(crate) fn read_message(
    stack: &Stack,
    request: &Request,
    sender: Uri,
    recipient: Uri,
    config: &EngineConfig,
) -> Result<std::result::Result<OutgoingMessage, Reply>> {
    let m = &request.message;
    let Some(content_type) = m.content_type()? else {
        return Ok(Err(stack.reply(
            request,
            400,
            "Bad Request (MESSAGE without a body)",
        )));
    };
    if m.body().len() > config.max_message_size {
        return Ok(Err(stack.reply(request, 413, "Request Entity Too Large")));
    }
    let mut message = OutgoingMessage::new(
        sender,
        recipient,
        m.header("Content-Type")
            .unwrap_or(&content_type.essence())
            .trim(),
        m.body(),
    );
    message.in_reply_to = m.header("In-Reply-To").map(str::to_owned);
    Ok(Ok(message))
}

/// A new MESSAGE request carrying `message` to `uri` at `dest`: its branch and bytes.
pub(crate) fn message_request(
    stack: &Stack,
    message: &Message,
    uri: &str,
    proto: Proto,
    dest: SocketAddr,
) -> Result<(String, Vec<u8>)> {
    let (mut b, branch) = stack.new_request("MESSAGE", uri, proto, dest)?;
    b.header(
        "From",
        &format!("<{}>;tag={}", message.sender, stack.token()),
    )?;
    b.header("To", &format!("<{}>", message.recipient))?;
    b.header("Call-ID", &format!("{}@impp", stack.token()))?;
    b.header("CSeq", "1 MESSAGE")?;
    if let Some(r) = &message.in_reply_to {
        b.header("In-Reply-To", r)?;
    }
    b.header("User-Agent", &stack.config().server_name)?;
    b.body(&message.content_type, &message.body)?;
    Ok((branch, b.build()))
}

/// What the answer to a MESSAGE sent to another domain means for its sender (RFC 3428 §7):
/// `200` delivered; `202` accepted by the other domain for later delivery (stored there:
/// its later outcome is not reported back across domains); 404/604 unknown user; 413/513 too
/// large; 403/603 rejected; 480 offline; anything else, a timeout (408) or nothing sent (0):
/// unreachable.
pub(crate) fn remote_outcome(status: u16) -> DeliveryOutcome {
    match status {
        202 => DeliveryOutcome::Stored,
        200..=299 => DeliveryOutcome::Delivered,
        404 | 604 => DeliveryOutcome::Failed(FailureReason::UnknownUser),
        413 | 513 => DeliveryOutcome::Failed(FailureReason::TooLarge),
        403 | 603 => DeliveryOutcome::Failed(FailureReason::Rejected),
        480 => DeliveryOutcome::Failed(FailureReason::Offline),
        _ => DeliveryOutcome::Failed(FailureReason::Unreachable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_other_domains_become_outcomes() {
        assert_eq!(remote_outcome(200), DeliveryOutcome::Delivered);
        assert_eq!(remote_outcome(202), DeliveryOutcome::Stored);
        assert_eq!(
            remote_outcome(404),
            DeliveryOutcome::Failed(FailureReason::UnknownUser)
        );
        assert_eq!(
            remote_outcome(408),
            DeliveryOutcome::Failed(FailureReason::Unreachable)
        );
        assert_eq!(
            remote_outcome(0),
            DeliveryOutcome::Failed(FailureReason::Unreachable)
        );
        assert_eq!(
            remote_outcome(503),
            DeliveryOutcome::Failed(FailureReason::Unreachable)
        );
    }
}

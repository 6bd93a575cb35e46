//! Multipart, deprecated (`multipart`, contract §1.9.2): Multipart Normalized with the header
//! names as written (spelt and ordered like upstream's Ruby `mail` gem, see
//! [`super::headers`]) and indexed file parts `attachments[0]`, `attachments[1]`, …
//! (contract §9.2).

use super::form_data::FormData;
use super::headers::Naming;
use super::multipart_normalized::{AttachmentNames, form_with};
use super::{FormatOptions, PayloadEnvelope};
use crate::mail::message::ParsedMessage;

pub fn form<'a>(
    envelope: &PayloadEnvelope,
    message: &'a ParsedMessage,
    options: &FormatOptions,
) -> FormData<'a> {
    form_with(
        envelope,
        message,
        options,
        Naming::Original,
        AttachmentNames::Indexed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::format::tests::{envelope, message};

    #[test]
    fn original_header_names_and_indexed_attachments() {
        let message = message();
        let form = form(&envelope(), &message, &FormatOptions::default());
        let names: Vec<&str> = form.names().collect();
        assert_eq!(
            &names[3..8],
            [
                "headers[Received][0]",
                "headers[Received][1]",
                "headers[Subject]",
                "headers[Mime-Version]",
                "headers[X-Tag]",
            ]
        );
        assert_eq!(
            &names[names.len() - 2..],
            ["attachments[0]", "attachments[1]"]
        );
    }
}

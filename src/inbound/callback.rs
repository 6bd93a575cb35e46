//! Callback request bodies (contract §7): the authorization callback made at RCPT time and the
//! error callback made after a non-2xx target answer. Pure functions; `deliver` sends them.
//!
//! The encoding follows the URL's extension: `.json` → JSON, `.xml` → XML (authorization
//! callbacks only), anything else → `application/x-www-form-urlencoded`
//! (contract §7.1, §7.2, §9.10).

use serde_json::json;

use super::format::Spf;
use crate::config::TargetUrl;
use crate::webhook::Payload;

/// What an authorization callback is told about the recipient being checked (contract §7.1).
#[derive(Debug, Clone)]
pub struct AuthorizationRequest<'a> {
    pub to: &'a str,
    pub from: &'a str,
    /// The client's `SIZE=` value, if it sent one.
    pub size: Option<usize>,
    pub remote_ip: &'a str,
    pub helo_domain: &'a str,
    pub spf: &'a Spf,
}

/// What an error callback is told about a failed delivery (contract §7.2).
#[derive(Debug, Clone)]
pub struct ErrorReport<'a> {
    /// The target's HTTP status; 0 when it could not be reached.
    pub status: u16,
    pub to: &'a str,
    pub from: &'a str,
    pub response: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Form,
    Json,
    Xml,
}

fn encoding(url: &TargetUrl) -> Encoding {
    let path = url.expose().path().to_ascii_lowercase();
    if path.ends_with(".json") {
        Encoding::Json
    } else if path.ends_with(".xml") {
        Encoding::Xml
    } else {
        Encoding::Form
    }
}

pub fn authorization(url: &TargetUrl, request: &AuthorizationRequest<'_>) -> Payload {
    match encoding(url) {
        Encoding::Json => {
            let mut body = json!({
                "to": request.to,
                "from": request.from,
                "helo_domain": request.helo_domain,
                "remote_ip": request.remote_ip,
                "spf": request.spf,
            });
            if let Some(size) = request.size {
                body["size"] = json!(size);
            }
            payload(
                "application/json",
                serde_json::to_vec(&body).expect("JSON serialises"),
            )
        }
        Encoding::Xml => {
            let mut xml =
                String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<parameters>\n");
            if let Some(size) = request.size {
                xml.push_str(&format!("  <size type=\"integer\">{size}</size>\n"));
            }
            for (name, value) in [
                ("to", request.to),
                ("from", request.from),
                ("helo-domain", request.helo_domain),
                ("remote-ip", request.remote_ip),
            ] {
                xml.push_str(&format!("  <{name}>{}</{name}>\n", xml_escape(value)));
            }
            xml.push_str(&format!(
                "  <spf>\n    <result>{}</result>\n    <domain>{}</domain>\n  </spf>\n</parameters>\n",
                xml_escape(&request.spf.result),
                xml_escape(&request.spf.domain)
            ));
            payload("application/xml", xml.into_bytes())
        }
        Encoding::Form => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            if let Some(size) = request.size {
                form.append_pair("size", &size.to_string());
            }
            form.append_pair("to", request.to)
                .append_pair("from", request.from)
                .append_pair("helo_domain", request.helo_domain)
                .append_pair("remote_ip", request.remote_ip)
                .append_pair("spf[result]", &request.spf.result)
                .append_pair("spf[domain]", &request.spf.domain);
            payload(
                "application/x-www-form-urlencoded",
                form.finish().into_bytes(),
            )
        }
    }
}

pub fn error(url: &TargetUrl, report: &ErrorReport<'_>) -> Payload {
    match encoding(url) {
        Encoding::Json => {
            let body = json!({
                "status": report.status,
                "to": report.to,
                "from": report.from,
                "response": report.response,
            });
            payload(
                "application/json",
                serde_json::to_vec(&body).expect("JSON serialises"),
            )
        }
        // Error callbacks have no XML form upstream: anything but .json is a form.
        Encoding::Form | Encoding::Xml => {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("status", &report.status.to_string())
                .append_pair("to", report.to)
                .append_pair("from", report.from)
                .append_pair("response", report.response)
                .finish();
            payload("application/x-www-form-urlencoded", body.into_bytes())
        }
    }
}

fn payload(content_type: &'static str, body: Vec<u8>) -> Payload {
    Payload {
        content_type: content_type.to_string(),
        body,
    }
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spf() -> Spf {
        Spf {
            result: "pass".into(),
            domain: "example.com".into(),
        }
    }

    fn request(spf: &Spf) -> AuthorizationRequest<'_> {
        AuthorizationRequest {
            to: "to@example.net",
            from: "from+test@example.com",
            size: Some(102400),
            remote_ip: "127.0.0.1",
            helo_domain: "localhost",
            spf,
        }
    }

    fn body(payload: &Payload) -> String {
        String::from_utf8(payload.body.clone()).unwrap()
    }

    #[test]
    fn authorization_encodings_match_the_spec_examples() {
        let spf = spf();
        let form = authorization(
            &TargetUrl::parse("http://app.test/auth").unwrap(),
            &request(&spf),
        );
        assert_eq!(form.content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            body(&form),
            "size=102400&to=to%40example.net&from=from%2Btest%40example.com&helo_domain=localhost&remote_ip=127.0.0.1&spf%5Bresult%5D=pass&spf%5Bdomain%5D=example.com"
        );
        let json = authorization(
            &TargetUrl::parse("http://app.test/auth.json").unwrap(),
            &request(&spf),
        );
        let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(
            value,
            json!({"size": 102400, "to": "to@example.net", "from": "from+test@example.com",
                   "helo_domain": "localhost", "remote_ip": "127.0.0.1",
                   "spf": {"result": "pass", "domain": "example.com"}})
        );
        let xml = authorization(
            &TargetUrl::parse("http://app.test/auth.XML").unwrap(),
            &request(&spf),
        );
        let text = body(&xml);
        assert!(text.contains("<size type=\"integer\">102400</size>"));
        assert!(text.contains("<helo-domain>localhost</helo-domain>"));
        assert!(text.contains("<spf>\n    <result>pass</result>"));
    }

    #[test]
    fn xml_is_escaped() {
        let spf = spf();
        let hostile = AuthorizationRequest {
            from: "a<b>&\"c\u{1}\"@example.com",
            ..request(&spf)
        };
        let xml = authorization(
            &TargetUrl::parse("http://app.test/a.xml").unwrap(),
            &hostile,
        );
        assert!(body(&xml).contains("<from>a&lt;b&gt;&amp;&quot;c&quot;@example.com</from>"));
    }

    #[test]
    fn error_reports() {
        let report = ErrorReport {
            status: 422,
            to: "recipient@example.com",
            from: "from@example.com",
            response: "<html>no</html>",
        };
        let form = error(
            &TargetUrl::parse("http://app.test/errors").unwrap(),
            &report,
        );
        assert_eq!(
            body(&form),
            "status=422&to=recipient%40example.com&from=from%40example.com&response=%3Chtml%3Eno%3C%2Fhtml%3E"
        );
        let json = error(
            &TargetUrl::parse("http://app.test/errors.json").unwrap(),
            &report,
        );
        let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(value["status"], 422);
        assert_eq!(value["response"], "<html>no</html>");
    }
}

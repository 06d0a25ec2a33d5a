//! Providers as tenants register them, and their deliveries verified scheme by scheme.

use axum::http::HeaderValue;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::verify::decode_hex;
use super::*;

const NOW: i64 = 1_750_000_000;
const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid","data":{"amount":2000}}"#;
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PLAIN: &str = "It's a Secret to Everybody";

/// Signing independent of the code under test: the hmac crate and hand-written formats.
fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn standard_signature(secret: &str, id: &str, at: i64, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{at}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

fn stripe_header(secret: &str, at: i64, body: &[u8]) -> String {
    let signature = hmac_hex(secret.as_bytes(), &[at.to_string().as_bytes(), b".", body]);
    format!("t={at},v1={signature}")
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// A valid case's headers with one replaced.
fn with_header(mut map: HeaderMap, name: &'static str, value: &str) -> HeaderMap {
    map.insert(name, HeaderValue::from_str(value).unwrap());
    map
}

fn standard(at: i64, signature: String) -> HeaderMap {
    headers(&[
        ("webhook-id", "msg_1".into()),
        ("webhook-timestamp", at.to_string()),
        ("webhook-signature", signature),
    ])
}

type Case = (
    &'static str,
    HeaderMap,
    &'static [u8],
    Result<(), VerifyError>,
);

fn run(scheme: Scheme, secret: &str, cases: Vec<Case>) {
    for (name, headers, body, expected) in cases {
        let got = verify(&scheme, secret, 300, &headers, body, NOW);
        assert_eq!(got, expected, "{}: {name}", scheme.as_str());
    }
}

#[test]
fn standard_webhooks_deliveries() {
    let good = standard_signature(WHSEC, "msg_1", NOW, BODY);
    let other = standard_signature("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_1", NOW, BODY);
    let old = NOW - 301;
    let future = NOW + 301;
    let missing = headers(&[
        ("webhook-id", "msg_1".into()),
        ("webhook-timestamp", NOW.to_string()),
    ]);
    let cases: Vec<Case> = vec![
        ("valid", standard(NOW, good.clone()), BODY, Ok(())),
        (
            "at the edge of tolerance",
            standard(
                NOW - 300,
                standard_signature(WHSEC, "msg_1", NOW - 300, BODY),
            ),
            BODY,
            Ok(()),
        ),
        (
            "wrong secret",
            standard(NOW, other.clone()),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "tampered body",
            standard(NOW, good.clone()),
            b"{}",
            Err(VerifyError::NoMatch),
        ),
        (
            "another timestamp",
            standard(NOW + 1, good.clone()),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "missing signature",
            missing,
            BODY,
            Err(VerifyError::MissingHeader("webhook-signature".into())),
        ),
        (
            "malformed timestamp",
            with_header(
                standard(NOW, good.clone()),
                "webhook-timestamp",
                "yesterday",
            ),
            BODY,
            Err(VerifyError::MalformedHeader("webhook-timestamp".into())),
        ),
        (
            "not a v1 signature",
            standard(NOW, "v2,abc".into()),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "too old",
            standard(old, standard_signature(WHSEC, "msg_1", old, BODY)),
            BODY,
            Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
        ),
        (
            "too far ahead",
            standard(future, standard_signature(WHSEC, "msg_1", future, BODY)),
            BODY,
            Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
        ),
        (
            "stale and unsigned: the signature decides first",
            standard(old, other.clone()),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "several, one valid",
            standard(NOW, format!("{other} {good}")),
            BODY,
            Ok(()),
        ),
    ];
    run(Scheme::StandardWebhooks, WHSEC, cases);
}

#[test]
fn stripe_deliveries() {
    let secret = "whsec_stripe_test_secret";
    let good = stripe_header(secret, NOW, BODY);
    let wrong = stripe_header("whsec_other", NOW, BODY);
    let good_v1 = good.split_once(",v1=").unwrap().1.to_owned();
    let wrong_v1 = wrong.split_once(",v1=").unwrap().1.to_owned();
    let sig = |value: String| headers(&[("stripe-signature", value)]);
    let old = NOW - 1000;
    let cases: Vec<Case> = vec![
        ("valid", sig(good.clone()), BODY, Ok(())),
        (
            "upper-case hex",
            sig(format!("t={NOW},v1={}", good_v1.to_uppercase())),
            BODY,
            Ok(()),
        ),
        (
            "wrong secret",
            sig(wrong.clone()),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "tampered body",
            sig(good.clone()),
            b"{\"id\":\"evt_2\"}",
            Err(VerifyError::NoMatch),
        ),
        (
            "timestamp changed",
            sig(format!("t={},v1={good_v1}", NOW + 1)),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "missing header",
            HeaderMap::new(),
            BODY,
            Err(VerifyError::MissingHeader("stripe-signature".into())),
        ),
        (
            "no timestamp",
            sig(format!("v1={good_v1}")),
            BODY,
            Err(VerifyError::MalformedHeader("stripe-signature".into())),
        ),
        (
            "not key=value",
            sig("garbage".into()),
            BODY,
            Err(VerifyError::MalformedHeader("stripe-signature".into())),
        ),
        (
            "timestamp not a number",
            sig(format!("t=soon,v1={good_v1}")),
            BODY,
            Err(VerifyError::MalformedHeader("stripe-signature".into())),
        ),
        (
            "only a v0 signature",
            sig(format!("t={NOW},v0={good_v1}")),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "not hex",
            sig(format!("t={NOW},v1=zz")),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "too old",
            sig(stripe_header(secret, old, BODY)),
            BODY,
            Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
        ),
        (
            "too far ahead",
            sig(stripe_header(secret, NOW + 1000, BODY)),
            BODY,
            Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
        ),
        (
            "several, one valid",
            sig(format!("t={NOW},v1={wrong_v1},v1={good_v1},v0=abc")),
            BODY,
            Ok(()),
        ),
    ];
    run(Scheme::Stripe, secret, cases);
}

#[test]
fn a_zero_tolerance_turns_the_timestamp_check_off() {
    let secret = "whsec_stripe_test_secret";
    let old = headers(&[(
        "stripe-signature",
        stripe_header(secret, NOW - 100_000, BODY),
    )]);
    assert_eq!(verify(&Scheme::Stripe, secret, 0, &old, BODY, NOW), Ok(()));
    assert_eq!(
        verify(&Scheme::Stripe, secret, 86_400, &old, BODY, NOW),
        Err(VerifyError::TimestampOutOfTolerance {
            tolerance_s: 86_400
        })
    );
}

#[test]
fn github_deliveries() {
    let good = format!("sha256={}", hmac_hex(PLAIN.as_bytes(), &[BODY]));
    let wrong = format!("sha256={}", hmac_hex(b"another secret", &[BODY]));
    let sig = |value: String| headers(&[("x-hub-signature-256", value)]);
    let bare = good.trim_start_matches("sha256=").to_owned();
    let cases: Vec<Case> = vec![
        ("valid", sig(good.clone()), BODY, Ok(())),
        ("wrong secret", sig(wrong), BODY, Err(VerifyError::NoMatch)),
        (
            "tampered body",
            sig(good.clone()),
            b"{}",
            Err(VerifyError::NoMatch),
        ),
        (
            "missing header",
            headers(&[("x-hub-signature", "sha1=00".into())]),
            BODY,
            Err(VerifyError::MissingHeader("x-hub-signature-256".into())),
        ),
        (
            "no sha256= prefix",
            sig(bare),
            BODY,
            Err(VerifyError::MalformedHeader("x-hub-signature-256".into())),
        ),
        (
            "not hex",
            sig("sha256=xyz".into()),
            BODY,
            Err(VerifyError::MalformedHeader("x-hub-signature-256".into())),
        ),
        (
            "truncated",
            sig(good[..good.len() - 2].to_owned()),
            BODY,
            Err(VerifyError::NoMatch),
        ),
    ];
    run(Scheme::GitHub, PLAIN, cases);
}

#[test]
fn github_documentation_example() {
    // From GitHub's "Validating webhook deliveries".
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let headers = headers(&[("x-hub-signature-256", signature.into())]);
    assert_eq!(
        verify(&Scheme::GitHub, PLAIN, 0, &headers, b"Hello, World!", NOW),
        Ok(())
    );
}

#[test]
fn plain_hmac_deliveries() {
    let scheme = Scheme::HmacSha256 {
        signature_header: "x-acme-signature".into(),
    };
    let hex = hmac_hex(PLAIN.as_bytes(), &[BODY]);
    let sig = |value: String| headers(&[("x-acme-signature", value)]);
    let cases: Vec<Case> = vec![
        ("valid", sig(hex.clone()), BODY, Ok(())),
        (
            "valid with sha256=",
            sig(format!("sha256={hex}")),
            BODY,
            Ok(()),
        ),
        (
            "wrong secret",
            sig(hmac_hex(b"nope", &[BODY])),
            BODY,
            Err(VerifyError::NoMatch),
        ),
        (
            "tampered body",
            sig(hex.clone()),
            b"[]",
            Err(VerifyError::NoMatch),
        ),
        (
            "default header is not the configured one",
            headers(&[("x-signature", hex.clone())]),
            BODY,
            Err(VerifyError::MissingHeader("x-acme-signature".into())),
        ),
        (
            "malformed",
            sig("sha256=".into()),
            BODY,
            Err(VerifyError::MalformedHeader("x-acme-signature".into())),
        ),
    ];
    run(scheme, PLAIN, cases);
}

#[test]
fn error_codes() {
    assert_eq!(VerifyError::NoMatch.code(), "invalid_signature");
    assert_eq!(
        VerifyError::MissingHeader("x".into()).code(),
        "invalid_signature"
    );
    assert_eq!(
        VerifyError::TimestampOutOfTolerance { tolerance_s: 1 }.code(),
        "timestamp_out_of_tolerance"
    );
}

#[test]
fn hex_decoding() {
    assert_eq!(decode_hex("00ff10Ab"), Some(vec![0, 255, 16, 171]));
    for bad in ["", "0", "0g", "+1", "é1"] {
        assert_eq!(decode_hex(bad), None, "{bad}");
    }
}

fn spec(extra: Value) -> Value {
    let mut base = json!({
        "name": "stripe",
        "scheme": "stripe",
        "secret": "whsec_stripe_test_secret",
        "event_type": {"field": "type"},
    });
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    base
}

#[test]
fn a_provider_spec_gets_its_defaults() {
    let parsed = ProviderSpec::parse(&spec(json!({}))).unwrap();
    assert_eq!(parsed.scheme, Scheme::Stripe);
    assert_eq!(parsed.tolerance_s, Some(DEFAULT_TOLERANCE_S));
    assert_eq!(parsed.event_source(), "stripe");
    let hmac = ProviderSpec::parse(&spec(json!({"scheme": "hmac_sha256"}))).unwrap();
    assert_eq!(
        hmac.scheme.signature_header(),
        Some(DEFAULT_SIGNATURE_HEADER)
    );
    assert_eq!(hmac.tolerance_s, None);
    let github = ProviderSpec::parse(&spec(json!({
        "scheme": "github",
        "event_type": {"header": "X-GitHub-Event"},
        "type_prefix": "github.",
        "source": "gh",
    })))
    .unwrap();
    assert_eq!(
        github.event_type,
        EventTypeFrom::Header("x-github-event".into())
    );
    assert_eq!(github.event_source(), "gh");
}

#[test]
fn bad_provider_specs_name_their_field() {
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"scheme": "svix"}), "scheme"),
        (json!({"scheme": 1}), "scheme"),
        (json!({"secret": ""}), "secret"),
        (json!({"secret": "tab\there"}), "secret"),
        (
            json!({"scheme": "standard_webhooks", "secret": "not-whsec"}),
            "secret",
        ),
        (json!({"tolerance_s": 86_401}), "tolerance_s"),
        (json!({"tolerance_s": -1}), "tolerance_s"),
        (
            json!({"scheme": "github", "tolerance_s": 60}),
            "tolerance_s",
        ),
        (json!({"signature_header": "x-sig"}), "signature_header"),
        (
            json!({"scheme": "hmac_sha256", "signature_header": "bad header"}),
            "signature_header",
        ),
        (json!({"event_type": "type"}), "event_type"),
        (json!({"event_type": {}}), "event_type"),
        (
            json!({"event_type": {"field": "type", "header": "x"}}),
            "event_type",
        ),
        (json!({"event_type": {"field": "a..b"}}), "event_type.field"),
        (json!({"event_type": {"header": ""}}), "event_type.header"),
        (json!({"type_prefix": "a..b"}), "type_prefix"),
        (json!({"type_prefix": ""}), "type_prefix"),
        (json!({"source": ""}), "source"),
        (json!({"colour": "blue"}), "colour"),
    ];
    for (extra, field) in cases {
        let error = ProviderSpec::parse(&spec(extra.clone())).unwrap_err();
        assert_eq!(error.field, field, "{extra}: {error}");
    }
    for missing in ["name", "scheme", "secret", "event_type"] {
        let mut body = spec(json!({}));
        body.as_object_mut().unwrap().remove(missing);
        assert_eq!(ProviderSpec::parse(&body).unwrap_err().field, missing);
    }
}

#[test]
fn event_type_and_delivery_id_are_found() {
    let stripe = ProviderSpec::parse(&spec(json!({
        "event_type": {"field": "data.kind"},
        "type_prefix": "stripe.",
    })))
    .unwrap();
    let body = json!({"id": "evt_9", "data": {"kind": "invoice.paid"}});
    let none = HeaderMap::new();
    assert_eq!(
        stripe.event_type_of(&none, &body).as_deref(),
        Some("stripe.invoice.paid")
    );
    assert_eq!(
        stripe.event_type_of(&none, &json!({"data": {"kind": 1}})),
        None
    );
    assert_eq!(stripe.event_type_of(&none, &json!({})), None);
    assert_eq!(stripe.delivery_id(&none, &body).as_deref(), Some("evt_9"));

    let github = ProviderSpec::parse(&spec(json!({
        "scheme": "github",
        "event_type": {"header": "x-github-event"},
    })))
    .unwrap();
    let delivered = headers(&[
        ("x-github-event", "push".into()),
        ("x-github-delivery", "72d3162e".into()),
    ]);
    assert_eq!(
        github.event_type_of(&delivered, &body).as_deref(),
        Some("push")
    );
    assert_eq!(
        github.delivery_id(&delivered, &body).as_deref(),
        Some("72d3162e")
    );
    assert_eq!(github.event_type_of(&none, &body), None);
}

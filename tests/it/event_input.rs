//! Bad events at every door of ingest, class by class: CloudEvents in structured, binary and
//! batch mode; Herald's own fields and the `Idempotency-Key` header on `POST /v1/events`; and
//! bodies over the limit on the event, batch and provider-hook routes. Each is answered with its
//! status and code in the contract's error shape and stores no event and no execution. A good
//! event afterwards shows that the door, the pipeline and the counting were live.

use std::time::Duration;

use herald_tests::sandbox::{SandboxOptions, TestTenant};
use herald_tests::{Sandbox, eventually};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::api_input::count;
use crate::support::SECRET;

/// One request that must be refused, and how.
struct Refused {
    case: &'static str,
    path: String,
    /// Whether the tenant's key goes along (a provider's hook has none).
    bearer: bool,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// A word the message must contain, so that it names what is wrong.
    mentions: &'static str,
}

impl Refused {
    fn post(case: &'static str, path: &str, content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            case,
            path: path.to_owned(),
            bearer: true,
            headers: vec![("content-type", HeaderValue::from_static(content_type))],
            body,
            status: 0,
            code: "",
            mentions: "",
        }
    }

    fn with_header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn answers(mut self, status: u16, code: &'static str, mentions: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self.mentions = mentions;
        self
    }
}

/// Herald's own JSON on `POST /v1/events`.
fn event(case: &'static str, body: Value) -> Refused {
    Refused::post(
        case,
        "/v1/events",
        "application/json",
        body.to_string().into_bytes(),
    )
}

/// A structured-mode CloudEvent on `POST /v1/events`.
fn structured(case: &'static str, body: Value) -> Refused {
    Refused::post(
        case,
        "/v1/events",
        "application/cloudevents+json",
        body.to_string().into_bytes(),
    )
}

/// A batch-mode CloudEvents body on `path`.
fn ce_batch(case: &'static str, path: &str, body: Value) -> Refused {
    Refused::post(
        case,
        path,
        "application/cloudevents-batch+json",
        body.to_string().into_bytes(),
    )
}

/// A binary-mode CloudEvent: `ce-*` headers (`attributes`, the four required ones unless
/// overridden or removed with an empty value) and `body` as data of `content_type`.
fn binary(
    case: &'static str,
    attributes: &[(&'static str, &'static str)],
    content_type: &'static str,
    body: &[u8],
) -> Refused {
    let mut headers = vec![
        ("ce-specversion", "1.0"),
        ("ce-id", "bin-1"),
        ("ce-type", "order.paid"),
        ("ce-source", "/shop"),
    ];
    for &(name, value) in attributes {
        headers.retain(|&(n, _)| n != name);
        headers.push((name, value));
    }
    let mut refused = Refused::post(case, "/v1/events", content_type, body.to_vec());
    for (name, value) in headers.into_iter().filter(|(_, v)| !v.is_empty()) {
        refused = refused.with_header(name, HeaderValue::from_static(value));
    }
    refused
}

/// A valid structured CloudEvent with `patch` applied (`null` removes an attribute).
fn cloudevent(patch: Value) -> Value {
    let mut event = json!({"specversion": "1.0", "id": "ce-1", "type": "order.paid",
                           "source": "/shop", "data": {"amount": 5}});
    for (name, value) in patch.as_object().expect("an object") {
        match value {
            Value::Null => {
                event.as_object_mut().expect("object").remove(name);
            }
            _ => event[name] = value.clone(),
        }
    }
    event
}

/// A sandbox whose limits are small enough to cross cheaply (a body just over 16 KiB still fits
/// the socket buffers, so the client finishes sending before the 413 closes the connection),
/// with a tenant whose one action matches every type: a refused event that slipped into the
/// pipeline would leave an execution behind.
async fn sandbox_with_tenant() -> (Sandbox, TestTenant) {
    let sandbox = Sandbox::with(SandboxOptions {
        configure: |config| {
            config.ingest.max_body_bytes = 16 * 1024;
            config.ingest.max_batch_events = 3;
        },
        ..SandboxOptions::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            json!({"name": "every-event", "event_types": ["#"], "handler": {"type": "log"}}),
        )
        .await;
    (sandbox, tenant)
}

/// Sends every case and checks its answer, then that nothing at all was stored.
async fn assert_refused(sandbox: &Sandbox, tenant: &TestTenant, cases: Vec<Refused>) {
    for case in cases {
        let mut request = sandbox
            .http
            .request(Method::POST, sandbox.api_url(&case.path))
            .body(case.body.clone());
        if case.bearer {
            request = request.bearer_auth(&tenant.key);
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value.clone());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.case));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (case.status, Some(case.code)),
            "{}: {answer}",
            case.case
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && message.contains(case.mentions),
            "{}: the message should mention {:?}: {answer}",
            case.case,
            case.mentions
        );
        for table in ["events", "executions"] {
            assert_eq!(
                count(sandbox, table).await,
                0,
                "{}: nothing may be stored in {table}",
                case.case
            );
        }
    }
}

/// The good request is stored and matched: one event and its one execution, and no more.
async fn assert_only_this_one_goes_through(sandbox: &Sandbox, request: reqwest::RequestBuilder) {
    let response = request.send().await.expect("ingest");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 202, "the good request: {answer}");
    eventually(
        "the good event's execution",
        Duration::from_secs(30),
        || async { (count(sandbox, "executions").await > 0).then_some(()) },
    )
    .await;
    assert_eq!(count(sandbox, "events").await, 1);
    assert_eq!(count(sandbox, "executions").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_cloudevents_in_every_mode_are_refused_precisely_and_store_nothing() {
    let (sandbox, tenant) = sandbox_with_tenant().await;
    let invalid = "invalid_cloudevent";
    let cases = vec![
        // Structured mode: the attributes the HTTP binding requires, and their shapes.
        structured(
            "structured without specversion",
            cloudevent(json!({"specversion": null})),
        )
        .answers(422, invalid, "specversion"),
        structured(
            "structured with specversion 0.3",
            cloudevent(json!({"specversion": "0.3"})),
        )
        .answers(422, invalid, "0.3"),
        structured(
            "structured with a numeric specversion",
            cloudevent(json!({"specversion": 1.0})),
        )
        .answers(422, invalid, "specversion"),
        structured("structured without id", cloudevent(json!({"id": null})))
            .answers(422, invalid, "`id`"),
        structured("structured with an empty id", cloudevent(json!({"id": ""})))
            .answers(422, invalid, "`id`"),
        structured("structured without type", cloudevent(json!({"type": null})))
            .answers(422, invalid, "`type`"),
        structured(
            "structured without source",
            cloudevent(json!({"source": null})),
        )
        .answers(422, invalid, "`source`"),
        structured("structured not an object", json!([cloudevent(json!({}))]))
            .answers(422, invalid, "object"),
        structured(
            "structured with data and data_base64",
            cloudevent(json!({"data_base64": "AA=="})),
        )
        .answers(422, invalid, "exclusive"),
        structured(
            "structured with data_base64 not base64",
            cloudevent(json!({"data": null, "data_base64": "not base64!"})),
        )
        .answers(422, invalid, "data_base64"),
        structured(
            "structured with an object extension",
            cloudevent(json!({"region": {"name": "eu"}})),
        )
        .answers(422, invalid, "region"),
        structured(
            "structured with a bad Herald type",
            cloudevent(json!({"type": "order..paid"})),
        )
        .answers(422, "invalid_event_type", "order..paid"),
        structured(
            "structured with a bad time",
            cloudevent(json!({"time": "noon"})),
        )
        .answers(422, "invalid_time", "time"),
        structured(
            "structured with a NUL in source",
            cloudevent(json!({"source": "/shop\u{0}"})),
        )
        .answers(422, "invalid_source", "`source`"),
        structured(
            "structured with a NUL in an extension",
            cloudevent(json!({"region": "eu\u{0}"})),
        )
        .answers(422, "invalid_metadata", "metadata"),
        Refused::post(
            "structured not JSON",
            "/v1/events",
            "application/cloudevents+json",
            b"{\"specversion\": ".to_vec(),
        )
        .answers(400, "invalid_json", "JSON"),
        // Binary mode: attributes in headers, the body is the data.
        binary(
            "binary with octet-stream data",
            &[],
            "application/octet-stream",
            &[0, 1, 2, 255],
        )
        .answers(415, "unsupported_media_type", "application/octet-stream"),
        binary("binary with XML data", &[], "application/xml", b"<a/>").answers(
            415,
            "unsupported_media_type",
            "application/xml",
        ),
        binary(
            "binary with JSON data that is not JSON",
            &[],
            "application/json",
            b"{oops",
        )
        .answers(422, invalid, "JSON"),
        binary(
            "binary with specversion 0.3",
            &[("ce-specversion", "0.3")],
            "application/json",
            b"{}",
        )
        .answers(422, invalid, "0.3"),
        binary(
            "binary without ce-id",
            &[("ce-id", "")],
            "application/json",
            b"{}",
        )
        .answers(422, invalid, "`id`"),
        binary(
            "binary without ce-type",
            &[("ce-type", "")],
            "application/json",
            b"{}",
        )
        .answers(422, invalid, "`type`"),
        binary(
            "binary without ce-source",
            &[("ce-source", "")],
            "application/json",
            b"{}",
        )
        .answers(422, invalid, "`source`"),
        binary(
            "binary with a percent-encoded NUL in ce-source",
            &[("ce-source", "/shop%00")],
            "application/json",
            b"{}",
        )
        .answers(422, "invalid_source", "`source`"),
        binary(
            "binary with a bad ce-time",
            &[("ce-time", "2026-13-01T00:00:00Z")],
            "application/json",
            b"{}",
        )
        .answers(422, "invalid_time", "time"),
        // Batch mode, on both event routes: one bad item refuses the batch, good items too.
        ce_batch("batch not an array", "/v1/events", cloudevent(json!({})))
            .answers(422, invalid, "array"),
        ce_batch(
            "batch with a bad second item",
            "/v1/events",
            json!([
                cloudevent(json!({})),
                cloudevent(json!({"id": "ce-2", "specversion": null}))
            ]),
        )
        .answers(422, invalid, "[1]"),
        ce_batch(
            "batch with a bad second item on /v1/events/batch",
            "/v1/events/batch",
            json!([
                cloudevent(json!({})),
                cloudevent(json!({"id": "ce-2", "type": "a..b"}))
            ]),
        )
        .answers(422, "invalid_event_type", "events[1]"),
        ce_batch("empty batch", "/v1/events", json!([])).answers(422, "empty_batch", "at least"),
        ce_batch(
            "batch over the event limit",
            "/v1/events/batch",
            json!(
                (0..4)
                    .map(|n| cloudevent(json!({"id": format!("ce-{n}")})))
                    .collect::<Vec<_>>()
            ),
        )
        .answers(413, "batch_too_large", "at most 3"),
        Refused::post(
            "batch not JSON",
            "/v1/events",
            "application/cloudevents-batch+json",
            b"[{".to_vec(),
        )
        .answers(400, "invalid_json", "JSON"),
    ];
    assert_refused(&sandbox, &tenant, cases).await;

    assert_only_this_one_goes_through(
        &sandbox,
        sandbox
            .http_request(Method::POST, "/v1/events", &tenant.key)
            .header("content-type", "application/cloudevents+json")
            .body(cloudevent(json!({})).to_string()),
    )
    .await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_event_fields_headers_and_oversized_bodies_are_refused_and_store_nothing() {
    let (sandbox, tenant) = sandbox_with_tenant().await;
    let (status, provider) = sandbox
        .call(
            Method::POST,
            "/v1/providers",
            Some(&tenant.key),
            Some(
                json!({"name": "billing", "scheme": "standard_webhooks", "secret": SECRET,
                        "event_type": {"field": "type"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{provider}");
    let hook = format!("/v1/hooks/{}", provider["id"].as_str().expect("an id"));
    let good = json!({"type": "order.paid"});
    let long = "x".repeat(256);
    // Over the default metadata limit of 8 KiB by size, while well under its 64 entries.
    let one_big_entry = json!({"note": "x".repeat(8 * 1024)});
    let many_entries: serde_json::Map<String, Value> = (0..60)
        .map(|i| (format!("k{i:02}"), json!("v".repeat(150))))
        .collect();
    let oversized = "x".repeat(20 * 1024);
    let too_big = |what: &str| -> Vec<u8> {
        match what {
            "array" => json!([{"type": "order.paid", "data": oversized}]),
            _ => json!({"specversion": "1.0", "id": "big", "type": "order.paid",
                        "source": "/shop", "data": oversized}),
        }
        .to_string()
        .into_bytes()
    };
    let cases = vec![
        // The Idempotency-Key header: 1 to 255 visible ASCII characters.
        event("idempotency key too long", good.clone())
            .with_header("idempotency-key", long.parse().expect("header"))
            .answers(422, "invalid_idempotency_key", "255"),
        event("idempotency key empty", good.clone())
            .with_header("idempotency-key", HeaderValue::from_static(""))
            .answers(422, "invalid_idempotency_key", "255"),
        event("idempotency key not ASCII", good.clone())
            .with_header(
                "idempotency-key",
                HeaderValue::from_bytes("clé-1".as_bytes()).expect("header"),
            )
            .answers(422, "invalid_idempotency_key", "ASCII"),
        // Herald's own fields.
        event("id with a space", json!({"type": "a", "id": "has space"})).answers(
            422,
            "invalid_event_id",
            "`id`",
        ),
        event("id empty", json!({"type": "a", "id": ""})).answers(422, "invalid_event_id", "`id`"),
        event("id too long", json!({"type": "a", "id": long})).answers(
            422,
            "invalid_event_id",
            "255",
        ),
        event("id not ASCII", json!({"type": "a", "id": "événement"})).answers(
            422,
            "invalid_event_id",
            "ASCII",
        ),
        event("id not a string", json!({"type": "a", "id": 7})).answers(
            400,
            "invalid_json",
            "expected a string",
        ),
        event("source empty", json!({"type": "a", "source": ""})).answers(
            422,
            "invalid_source",
            "`source`",
        ),
        event("source too long", json!({"type": "a", "source": long})).answers(
            422,
            "invalid_source",
            "255",
        ),
        event("time a word", json!({"type": "a", "time": "yesterday"})).answers(
            422,
            "invalid_time",
            "RFC 3339",
        ),
        event(
            "time a date only",
            json!({"type": "a", "time": "2026-11-22"}),
        )
        .answers(422, "invalid_time", "RFC 3339"),
        event(
            "time without an offset",
            json!({"type": "a", "time": "2026-11-22T10:00:00"}),
        )
        .answers(422, "invalid_time", "RFC 3339"),
        event(
            "time in month 13",
            json!({"type": "a", "time": "2026-13-01T10:00:00Z"}),
        )
        .answers(422, "invalid_time", "RFC 3339"),
        // PostgreSQL's text and jsonb cannot hold U+0000.
        event(
            "source with a NUL",
            json!({"type": "a", "source": "a\u{0}b"}),
        )
        .answers(422, "invalid_source", "`source`"),
        event(
            "metadata value with a NUL",
            json!({"type": "a", "metadata": {"k": "a\u{0}b"}}),
        )
        .answers(422, "invalid_metadata", "metadata"),
        event(
            "metadata key with a NUL",
            json!({"type": "a", "metadata": {"k\u{0}": "v"}}),
        )
        .answers(422, "invalid_metadata", "metadata"),
        event(
            "metadata one entry over the byte limit",
            json!({"type": "a", "metadata": one_big_entry}),
        )
        .answers(413, "metadata_too_large", "bytes"),
        event(
            "metadata many entries over the byte limit",
            json!({"type": "a", "metadata": many_entries}),
        )
        .answers(413, "metadata_too_large", "bytes"),
        // Bodies over `ingest.max_body_bytes`, at every door that reads one.
        Refused::post(
            "batch body too large",
            "/v1/events/batch",
            "application/json",
            too_big("array"),
        )
        .answers(413, "body_too_large", "larger"),
        Refused::post(
            "CloudEvents batch body too large",
            "/v1/events/batch",
            "application/cloudevents-batch+json",
            too_big("array"),
        )
        .answers(413, "body_too_large", "larger"),
        Refused::post(
            "structured CloudEvent body too large",
            "/v1/events",
            "application/cloudevents+json",
            too_big("object"),
        )
        .answers(413, "body_too_large", "larger"),
        binary(
            "binary CloudEvent body too large",
            &[],
            "application/json",
            &too_big("object"),
        )
        .answers(413, "body_too_large", "larger"),
        Refused {
            bearer: false,
            ..Refused::post(
                "provider hook body too large",
                &hook,
                "application/json",
                too_big("object"),
            )
        }
        .answers(413, "body_too_large", "larger"),
    ];
    assert_refused(&sandbox, &tenant, cases).await;

    assert_only_this_one_goes_through(
        &sandbox,
        sandbox
            .http_request(Method::POST, "/v1/events", &tenant.key)
            .header("idempotency-key", "order-7-paid")
            // U+0000 is refused in text columns, but `data` is stored as `json`, which keeps it.
            .json(&json!({"id": "e-1", "type": "order.paid", "source": "shop",
                          "time": "2026-11-22T10:00:00Z", "metadata": {"region": "eu"},
                          "data": {"note": "a\u{0}b"}})),
    )
    .await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_that_could_not_be_stored_or_read_back_is_refused_at_every_door() {
    let (sandbox, tenant) = sandbox_with_tenant().await;
    // 65 levels: one past the default `ingest.max_json_depth`.
    let deep = || -> Value {
        serde_json::from_str(&format!("{}{}", "[".repeat(65), "]".repeat(65))).expect("JSON")
    };
    let raw = |case: &'static str, path: &str, content_type: &'static str, body: String| {
        Refused::post(case, path, content_type, body.into_bytes())
    };
    let herald = r#"{"type":"order.paid","data":DATA}"#;
    let herald_batch = r#"[{"type":"order.paid"},{"type":"order.paid","data":DATA}]"#;
    let cloud = r#"{"specversion":"1.0","id":"c1","type":"order.paid","source":"/s","data":DATA}"#;
    let with = |template: &str, data: &str| template.replace("DATA", data);
    let (huge, lone) = ("{\"n\":1e400}", r#"{"s":"\ud800"}"#);
    let cases = vec![
        // Nesting past `ingest.max_json_depth`, by every door.
        event("deep data", json!({"type": "order.paid", "data": deep()})).answers(
            422,
            "json_too_deep",
            "`data[0]",
        ),
        Refused::post(
            "deep data in a batch",
            "/v1/events/batch",
            "application/json",
            json!([{"type": "order.paid"}, {"type": "order.paid", "data": deep()}])
                .to_string()
                .into_bytes(),
        )
        .answers(422, "json_too_deep", "events[1]"),
        structured("deep CloudEvent data", cloudevent(json!({"data": deep()}))).answers(
            422,
            "json_too_deep",
            "64 levels",
        ),
        binary(
            "deep binary CloudEvent data",
            &[],
            "application/json",
            deep().to_string().as_bytes(),
        )
        .answers(422, "json_too_deep", "`data[0]"),
        ce_batch(
            "deep data in a CloudEvents batch",
            "/v1/events/batch",
            json!([
                cloudevent(json!({})),
                cloudevent(json!({"id": "c2", "data": deep()}))
            ]),
        )
        .answers(422, "json_too_deep", "events[1]"),
        raw(
            "a body deeper than any parser reads",
            "/v1/events",
            "application/cloudevents+json",
            with(cloud, &format!("{}{}", "[".repeat(130), "]".repeat(130))),
        )
        .answers(422, "json_too_deep", "128 levels"),
        // Numbers past a 64-bit float, by every door.
        raw(
            "a huge number",
            "/v1/events",
            "application/json",
            with(herald, huge),
        )
        .answers(422, "number_out_of_range", "`data.n`"),
        raw(
            "a 400-digit number in a batch",
            "/v1/events/batch",
            "application/json",
            with(herald_batch, &format!(r#"{{"n":{}}}"#, "9".repeat(400))),
        )
        .answers(422, "number_out_of_range", "`[1].data.n`"),
        raw(
            "a huge number in a CloudEvent",
            "/v1/events",
            "application/cloudevents+json",
            with(cloud, huge),
        )
        .answers(422, "number_out_of_range", "data.n"),
        binary(
            "a huge number as binary data",
            &[],
            "application/json",
            huge.as_bytes(),
        )
        .answers(422, "number_out_of_range", "`data.n`"),
        // Lone surrogate escapes, wherever text is.
        raw(
            "a lone surrogate in data",
            "/v1/events",
            "application/json",
            with(herald, lone),
        )
        .answers(422, "lone_surrogate", "`data.s`"),
        raw(
            "a lone surrogate in metadata",
            "/v1/events",
            "application/json",
            r#"{"type":"order.paid","metadata":{"k":"\udfff"}}"#.to_owned(),
        )
        .answers(422, "lone_surrogate", "`metadata.k`"),
        raw(
            "a lone surrogate in an id",
            "/v1/events",
            "application/json",
            r#"{"type":"order.paid","id":"x\ud83d"}"#.to_owned(),
        )
        .answers(422, "lone_surrogate", "`id`"),
        raw(
            "a lone surrogate in a CloudEvents extension",
            "/v1/events",
            "application/cloudevents-batch+json",
            format!("[{}]", with(cloud, r#"{}, "region": "\udc00""#)),
        )
        .answers(422, "lone_surrogate", "region"),
        // A one-off delivery's payload, named as the request names it.
        raw(
            "a deep delivery payload",
            "/v1/deliveries",
            "application/json",
            json!({"url": "https://example.com/hook", "payload": deep()}).to_string(),
        )
        .answers(422, "json_too_deep", "`payload[0]"),
        raw(
            "a huge number in a delivery payload",
            "/v1/deliveries",
            "application/json",
            format!(r#"{{"url":"https://example.com/hook","payload":{huge}}}"#),
        )
        .answers(422, "number_out_of_range", "`payload.n`"),
        raw(
            "a lone surrogate in a delivery payload",
            "/v1/deliveries",
            "application/json",
            format!(r#"{{"url":"https://example.com/hook","payload":{lone}}}"#),
        )
        .answers(422, "lone_surrogate", "`payload.s`"),
    ];
    assert_refused(&sandbox, &tenant, cases).await;

    // At the bounds, everything is stored and read back as sent: 64 levels, the largest and
    // smallest floats (the latter rounds to zero, as every parser does), a surrogate pair,
    // U+0000 (data is stored as `json`, which keeps it), and an id, type, source, idempotency
    // key and metadata at their limits.
    // 63 arrays in the data's object: 64 levels.
    let at_limit: Value =
        serde_json::from_str(&format!("{}{}", "[".repeat(63), "]".repeat(63))).expect("JSON");
    let longest = |c: char| c.to_string().repeat(255);
    let metadata: serde_json::Map<String, Value> = (0..64)
        .map(|i| (format!("k{i:02}"), json!("v".repeat(128 - 3))))
        .collect();
    let event = json!({"id": longest('i'), "type": longest('t'), "source": longest('s'),
                       "metadata": metadata,
                       "data": {"deep": at_limit, "max": 1.7976931348623157e308,
                                "tiny": 1e-400, "pair": "\u{1F600}", "nul": "a\u{0}b"}});
    let key = "k".repeat(255);
    let response = sandbox
        .http_request(Method::POST, "/v1/events", &tenant.key)
        .header("idempotency-key", key.as_str())
        .json(&event)
        .send()
        .await
        .expect("ingest");
    assert_eq!(
        response.status().as_u16(),
        202,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let stored = sandbox.event_view(&tenant, &longest('i')).await;
    assert_eq!(stored["type"], event["type"]);
    assert_eq!(stored["source"], event["source"]);
    assert_eq!(stored["metadata"], event["metadata"]);
    let mut expected = event["data"].clone();
    expected["tiny"] = json!(0.0);
    assert_eq!(stored["data"], expected, "data reads back whole");
    sandbox.stop().await;
}

//! Table tests of compiling and rendering templates: kinds, the JSON type a sole expression
//! keeps, bounds, and errors naming the field.

use chrono::Utc;
use herald_common::event::{EventLimits, IncomingEvent};
use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_common::messages::ExecutionJob;
use herald_common::store::SecretValues;
use serde_json::{Value, json};

use super::*;

fn job(event: Value) -> ExecutionJob {
    let incoming: IncomingEvent = serde_json::from_value(event).unwrap();
    let event = incoming
        .validate(TenantId::new(), None, Utc::now(), &EventLimits::default())
        .unwrap();
    ExecutionJob {
        step: None,
        execution_id: ExecutionId::new(),
        tenant_id: event.tenant_id,
        action_id: ActionId::new(),
        attempt: 2,
        event,
    }
}

fn context() -> RenderContext {
    let job = job(
        json!({"id": "evt_1", "type": "payment.succeeded", "source": "billing",
        "data": {"amount": 1250, "currency": "eur", "user": {"name": "Ann <b>", "email": "ann@example.com"},
                 "tags": ["a", "b"], "coupon": null, "path": "a/b?c"},
        "metadata": {"region": "eu"}}),
    );
    let secrets = SecretValues([("crm_token".to_owned(), "s3cr3t".to_owned())].into());
    RenderContext::new(&job, "notify", &secrets)
}

/// Renders `source` as a template of `kind`.
fn render(source: &str, kind: Kind) -> Result<String, RenderError> {
    let mut builder = Builder::new();
    let text = builder
        .text("handler.field", source, kind)
        .expect("compiles");
    let templates = builder.finish();
    templates.render(&text, &context()).map(|s| s.into_owned())
}

#[test]
fn text_templates_render_over_the_context() {
    let table = [
        ("no template", "no template"),
        ("{{ event.type }}", "payment.succeeded"),
        (
            "Paid {{ event.data.amount / 100 }} {{ event.data.currency | upper }}",
            "Paid 12.5 EUR",
        ),
        ("{{ event.id }} {{ event.source }}", "evt_1 billing"),
        ("{{ event.metadata.region }}", "eu"),
        ("{{ action.name }} #{{ execution.attempt }}", "notify #2"),
        ("Bearer {{ secrets.crm_token }}", "Bearer s3cr3t"),
        ("[{{ event.data.coupon }}]", "[]"),
        ("{{ event.data.tags }}", r#"["a","b"]"#),
        ("{{ event.data.user | tojson }}", ""),
        ("{% if event.data.missing %}y{% else %}n{% endif %}", "n"),
        ("{{ event.data.missing | default('none') }}", "none"),
        ("{% for t in event.data.tags %}{{ t }};{% endfor %}", "a;b;"),
        ("{{ event.data.user.name }}", "Ann <b>"),
    ];
    for (source, expected) in table {
        let rendered = render(source, Kind::Text).unwrap();
        if source.contains("tojson") {
            let value: Value = serde_json::from_str(&rendered).unwrap();
            assert_eq!(value["email"], "ann@example.com", "{source}");
        } else {
            assert_eq!(rendered, expected, "{source}");
        }
    }
}

#[test]
fn html_is_escaped_and_urls_are_encoded_by_kind() {
    assert_eq!(
        render("<p>{{ event.data.user.name }}</p>", Kind::Html).unwrap(),
        "<p>Ann &lt;b&gt;</p>"
    );
    assert_eq!(
        render("<p>{{ event.data.user.name | safe }}</p>", Kind::Html).unwrap(),
        "<p>Ann <b></p>"
    );
    assert_eq!(
        render("https://x.example/items/{{ event.data.path }}", Kind::Url).unwrap(),
        "https://x.example/items/a%2Fb%3Fc"
    );
    assert_eq!(
        render("https://x.example/{{ event.data.path | safe }}", Kind::Url).unwrap(),
        "https://x.example/a/b?c"
    );
}

#[test]
fn a_missing_value_fails_naming_the_expression() {
    let error = render("Hi {{ event.data.nope }}", Kind::Text).unwrap_err();
    assert_eq!(error.field, "handler.field");
    assert!(
        error.message.contains("`event.data.nope` is undefined"),
        "{error}"
    );
    let error = render("{{ event.data.nope.deeper }}", Kind::Text).unwrap_err();
    assert!(error.message.contains("event.data.nope"), "{error}");
    let error = render("{{ secrets.gone }}", Kind::Text).unwrap_err();
    assert!(
        error.message.contains("the secret \"gone\" does not exist"),
        "{error}"
    );
    let error = render("{% for x in event.data.nope %}{% endfor %}", Kind::Text).unwrap_err();
    assert!(error.message.contains("event.data.nope"), "{error}");
}

#[test]
fn work_and_output_are_bounded() {
    for source in [
        "{% for i in range(100000000) %}x{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    ] {
        let error = render(source, Kind::Text).unwrap_err();
        assert_eq!(error.field, "handler.field", "{source}");
    }
}

#[test]
fn compiling_refuses_what_could_never_render() {
    let refused = [
        (
            "Hi {{ event.data. }}",
            "template syntax error at line 1, column",
        ),
        ("line one\n{% if %}", "line 2"),
        ("{{ evnt.type }}", "refers to \"evnt\""),
        ("{{ secrets }}", "name one"),
        ("{{ secrets['x'] }}", "name one"),
        ("{{ secrets.Bad }}", "[a-z0-9_]"),
        ("{% include 'x' %}", "syntax error"),
    ];
    for (source, expected) in refused {
        let mut builder = Builder::new();
        let error = builder
            .text("handler.body.text", source, Kind::Text)
            .unwrap_err();
        assert_eq!(error.field, "handler.body.text", "{source}");
        assert!(error.message.contains(expected), "{source}: {error}");
    }
}

#[test]
fn the_secrets_a_template_uses_are_known_after_compiling() {
    let mut builder = Builder::new();
    builder
        .text("a", "Bearer {{ secrets.crm_token }}", Kind::Text)
        .unwrap();
    builder
        .text("b", "{{ secrets.smtp_password }}{{ range(2) }}", Kind::Text)
        .unwrap();
    let templates = builder.finish();
    let names: Vec<(&str, &str)> = templates
        .secrets()
        .iter()
        .map(|(name, field)| (name.as_str(), field.as_str()))
        .collect();
    assert_eq!(names, [("crm_token", "a"), ("smtp_password", "b")]);
}

#[test]
fn a_json_template_keeps_the_type_of_a_sole_expression() {
    let body = json!({
        "text": "Paid {{ event.data.amount / 100 }} {{ event.data.currency | upper }}",
        "amount": "{{ event.data.amount }}",
        "user": "{{ event.data.user }}",
        "tags": ["billing", "{{ event.data.tags[0] }}", "{{- event.data.coupon -}}"],
        "fixed": {"n": 1, "s": "plain"},
        "flag": "{{ event.data.amount > 1000 }}",
    });
    let mut builder = Builder::new();
    let template = builder.json("handler.body", &body).unwrap();
    let templates = builder.finish();
    let rendered = template.render(&templates, &context()).unwrap();
    assert_eq!(
        rendered,
        json!({
            "text": "Paid 12.5 EUR",
            "amount": 1250,
            "user": {"name": "Ann <b>", "email": "ann@example.com"},
            "tags": ["billing", "a", null],
            "fixed": {"n": 1, "s": "plain"},
            "flag": true,
        })
    );
    let mut builder = Builder::new();
    let template = builder
        .json("handler.body", &json!({"x": ["{{ event.data.nope }}"]}))
        .unwrap();
    let error = template.render(&builder.finish(), &context()).unwrap_err();
    assert_eq!(error.field, "handler.body.x[0]");
}

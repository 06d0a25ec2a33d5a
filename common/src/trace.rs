//! One trace per event, across processes: W3C `traceparent` values, and spans started under
//! one. An event carries its trace context with it (`Event::trace`, since a broker message
//! carries many events, each with its own trace), an outside publisher may set the AMQP
//! `traceparent` header, and a delayed job stores it. Each hop starts its span as a child of
//! what it received and hands its own context on, so the tree reads ingest → matcher →
//! executor attempt (→ its HTTP request) → scheduler release → next attempt.
//!
//! Spans go to the global OpenTelemetry tracer: exported by OTLP when configured (see
//! `telemetry`), captured in memory by the tests, and dropped otherwise. When nothing records
//! them, ids are made here, so that the context handed on (and the `traceparent` a webhook
//! receiver sees) is real either way.

use std::fmt;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, global};
use rand::Rng;

/// What a span's caller needs, so that services need not depend on OpenTelemetry themselves.
pub use opentelemetry::KeyValue;
pub use opentelemetry::trace::SpanKind;

/// The AMQP header (and HTTP header) carrying a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed W3C trace context: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` for anything malformed (it is then ignored, and a
    /// new trace starts), as the W3C recommendation says.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        if flags.len() != 2 || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !(hex(version) && hex(trace) && hex(span) && hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace's root context.
    pub fn root() -> Self {
        let mut rng = rand::rng();
        Self {
            trace_id: rng.random::<u128>().max(1),
            span_id: rng.random::<u64>().max(1),
            sampled: true,
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        Self {
            span_id: rand::rng().random::<u64>().max(1),
            ..*self
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// A span of Herald's: ended when dropped.
pub struct HeraldSpan {
    context: TraceParent,
    span: global::BoxedSpan,
}

impl fmt::Debug for HeraldSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeraldSpan")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl HeraldSpan {
    /// Starts `name` as a child of `parent` (a `traceparent` value), or as a new trace's root
    /// when there is none or it is malformed.
    pub fn start(
        name: &'static str,
        kind: SpanKind,
        parent: Option<&str>,
        attributes: Vec<KeyValue>,
    ) -> Self {
        let parent = parent.and_then(TraceParent::parse);
        let tracer = global::tracer("herald");
        let builder = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes);
        let parent_context = match parent {
            Some(p) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from(p.trace_id),
                SpanId::from(p.span_id),
                if p.sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                true,
                TraceState::default(),
            )),
            None => Context::new(),
        };
        let span = tracer.build_with_context(builder, &parent_context);
        // A recording tracer gives the span ids of its own; without one (nothing exported),
        // the span is a no-op that only echoes its parent, and the ids are made here.
        let own = span.span_context();
        let context =
            if own.is_valid() && parent.is_none_or(|p| own.span_id() != SpanId::from(p.span_id)) {
                TraceParent {
                    trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
                    span_id: u64::from_be_bytes(own.span_id().to_bytes()),
                    sampled: own.is_sampled(),
                }
            } else {
                parent.map_or_else(TraceParent::root, |p| p.child())
            };
        Self { context, span }
    }

    /// This span's context, to hand on.
    pub fn traceparent(&self) -> String {
        self.context.to_string()
    }

    pub fn context(&self) -> TraceParent {
        self.context
    }

    pub fn set_attribute(&mut self, attribute: KeyValue) {
        self.span.set_attribute(attribute);
    }

    /// Marks the span failed, with a short reason.
    pub fn set_error(&mut self, message: impl Into<String>) {
        self.span
            .set_status(opentelemetry::trace::Status::error(message.into()));
    }
}

impl Drop for HeraldSpan {
    fn drop(&mut self) {
        self.span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_as_the_w3c_says() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(valid).expect("valid");
        assert_eq!(parsed.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parsed.span_id, 0x00f067aa0ba902b7);
        assert!(parsed.sampled);
        assert_eq!(parsed.to_string(), valid);
        let table = [
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                true,
            ),
            // A later version may add fields.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                false,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                false,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                false,
            ),
            ("", false),
            ("garbage", false),
        ];
        for (text, ok) in table {
            assert_eq!(TraceParent::parse(text).is_some(), ok, "{text}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_its_own_span() {
        let root = TraceParent::root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        let span = HeraldSpan::start("test", SpanKind::Internal, Some(&root.to_string()), vec![]);
        assert_eq!(span.context().trace_id, root.trace_id);
        let orphan = HeraldSpan::start("test", SpanKind::Internal, Some("nonsense"), vec![]);
        assert_ne!(orphan.context().trace_id, root.trace_id);
    }
}

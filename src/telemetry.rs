//! Logging: JSON when not on a terminal (in a cluster), human otherwise;
//! and, when an OTLP endpoint is set, the same spans as OpenTelemetry
//! traces (see `telemetry_otlp.rs`).
//!
//! Text lines escape control characters in messages and field values (a
//! D365 answer quoted in a log cannot forge a line or recolour a terminal),
//! and carry ANSI colours only when stderr is a terminal, never into files.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::trace::SdkTracer;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*};

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON unless stderr is a terminal.
    Auto,
    Json,
    Text,
}

#[path = "telemetry_otlp.rs"]
mod otlp;

pub use otlp::TracesError;

/// Set once traces are exported: the request and status-write spans are
/// made only then, so with traces off they cost nothing.
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (see [`init_with_traces`]).
pub fn traces_on() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// The trace exporter, if one was set up; [`Traces::shutdown`] sends what
/// is still buffered.
#[derive(Debug)]
#[must_use = "call shutdown at exit, or the last spans are lost"]
pub struct Traces(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Traces {
    /// Flushes and stops the exporter (waits up to its timeout; the export
    /// runs on this runtime, so the wait is on a blocking thread).
    pub async fn shutdown(self) {
        let Some(provider) = self.0 else { return };
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "flushing traces failed"),
            Err(error) => tracing::warn!(%error, "flushing traces failed"),
        }
    }
}

/// Installs the global subscriber; `RUST_LOG` overrides `default_filter`.
/// No traces (see [`init_with_traces`]).
pub fn init(format: LogFormat, default_filter: &str) {
    install(format, default_filter, None);
}

/// As [`init`], plus the OTLP trace layer when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (or `..._TRACES_ENDPOINT`) is set; off, no layer and no cost. Call it
/// inside the Tokio runtime.
pub fn init_with_traces(format: LogFormat, default_filter: &str) -> Result<Traces, TracesError> {
    let Some((provider, tracer)) = otlp::provider_from_env()? else {
        install(format, default_filter, None);
        return Ok(Traces(None));
    };
    install(format, default_filter, Some(tracer));
    TRACES_ON.store(true, Ordering::Relaxed);
    Ok(Traces(Some(provider)))
}

fn install(format: LogFormat, default_filter: &str, tracer: Option<SdkTracer>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Json => true,
        LogFormat::Text => false,
    };
    let traces = tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer));
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init();
    } else {
        registry.with(text_layer(std::io::stderr, terminal)).init();
    }
}

/// The text layer: control characters escaped, colours only if `ansi`.
fn text_layer<S, W>(writer: W, ansi: bool) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fields = fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = escape_controls(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ");
    fmt::layer()
        .with_ansi(ansi)
        .fmt_fields(fields)
        .with_writer(writer)
}

/// `text` with every control character (newline, carriage return, escape)
/// written as a Rust escape (`\n`, `\u{1b}`).
fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything the layer writes, as text.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(ansi: bool) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::registry().with(text_layer(move || writer.clone(), ansi));
        tracing::subscriber::with_default(subscriber, || {
            let answer = "denied\nINFO forged line \u{1b}[31mred\r";
            tracing::warn!(error = %answer, status = 403, "D365 said {}", answer);
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn text_lines_escape_control_characters_and_colour_only_on_request() {
        let plain = logged(false);
        assert_eq!(plain.lines().count(), 1, "{plain}");
        assert!(
            !plain.contains('\u{1b}') && !plain.contains('\r'),
            "{plain:?}"
        );
        assert!(
            plain.contains(r"error=denied\nINFO forged line \u{1b}[31mred\r"),
            "{plain}"
        );
        assert!(plain.contains(r"D365 said denied\nINFO"), "{plain}");
        assert!(plain.contains("status=403"), "{plain}");
        let coloured = logged(true);
        assert!(coloured.contains('\u{1b}'), "a terminal gets colours");
        assert_eq!(coloured.lines().count(), 1, "{coloured:?}");
    }

    #[test]
    fn escaping_leaves_plain_text_alone() {
        assert!(matches!(
            escape_controls("plain é"),
            Cow::Borrowed("plain é")
        ));
        assert_eq!(escape_controls("a\tb\u{7f}"), r"a\tb\u{7f}");
    }
}

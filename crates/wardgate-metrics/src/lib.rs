//! wardgate's metrics vocabulary, sans-IO: a lock-free [`Histogram`] cheap
//! enough for the data path, and [`Exposition`], a writer of the Prometheus
//! text exposition format (version 0.0.4) whose API cannot produce a sample
//! outside its family, a family without HELP and TYPE, or an unescaped label.
//!
//! Counters and gauges need no type of their own: the adapters keep plain
//! atomics in arrays indexed by ids known when the policy is compiled (routes,
//! actions, rules), so the data path does no lookup and no allocation; a
//! scrape reads them and writes them here. Serving the text is the binary's
//! business (`wardgate serve`, `[gateway.admin] metrics`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A latency histogram: one atomic count per bucket, so observing is a few
/// comparisons and two relaxed additions, never a lock.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds (seconds), ascending; `+Inf` is implied.
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the last is above every bound.
    counts: Box<[AtomicU64]>,
    /// Sum of observations, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds in seconds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts now, cumulative as the format wants them. The total is the
    /// sum of the buckets read, so `+Inf` always equals `_count`.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (i, c) in self.counts.iter().enumerate() {
            total = total.saturating_add(c.load(Ordering::Relaxed));
            if let Some(b) = self.bounds.get(i) {
                buckets.push((*b, total));
            }
        }
        HistogramSnapshot {
            buckets,
            count: total,
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at or below it), ascending.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Sum of observations, seconds.
    pub sum: f64,
}

/// A value a sample can carry.
pub trait Value {
    /// Writes it as the format spells numbers (`NaN`, `+Inf`, `-Inf`).
    fn write_to(&self, out: &mut String);
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn write_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_value!(u8, u16, u32, u64, usize, i32, i64);

impl Value for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// What a family is (the `# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape being written: families one after another, each with its HELP and
/// TYPE lines and then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty scrape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a counter family (its name should end in `_total`).
    pub fn counter(&mut self, name: &'static str, help: &str) -> Samples<'_> {
        self.family(name, Kind::Counter, help)
    }

    /// Starts a gauge family.
    pub fn gauge(&mut self, name: &'static str, help: &str) -> Samples<'_> {
        self.family(name, Kind::Gauge, help)
    }

    /// Starts a histogram family.
    pub fn histogram(&mut self, name: &'static str, help: &str) -> Histograms<'_> {
        self.family(name, Kind::Histogram, help);
        Histograms { x: self, name }
    }

    fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Samples<'_> {
        let out = &mut self.out;
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        // Text format: in HELP, backslash and newline are escaped.
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(kind.as_str());
        out.push('\n');
        Samples { x: self, name }
    }

    /// The text.
    pub fn into_string(self) -> String {
        self.out
    }

    /// One sample line: `name{labels} value`.
    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        extra: Option<(&str, &str)>,
        value: &dyn Value,
    ) {
        let out = &mut self.out;
        out.push_str(name);
        out.push_str(suffix);
        let mut all = labels.iter().copied().chain(extra).peekable();
        if all.peek().is_some() {
            out.push('{');
            for (i, (k, v)) in all.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                escape_label_value(v, out);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        value.write_to(out);
        out.push('\n');
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The samples of a counter or gauge family.
pub struct Samples<'a> {
    x: &'a mut Exposition,
    name: &'static str,
}

impl Samples<'_> {
    /// One sample with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Value) -> &mut Self {
        self.x.line(self.name, "", labels, None, &value);
        self
    }
}

/// The samples of a histogram family.
pub struct Histograms<'a> {
    x: &'a mut Exposition,
    name: &'static str,
}

impl Histograms<'_> {
    /// One histogram (its buckets, `+Inf`, sum and count) with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], h: &HistogramSnapshot) -> &mut Self {
        let mut le = String::new();
        for (bound, n) in &h.buckets {
            le.clear();
            bound.write_to(&mut le);
            self.x
                .line(self.name, "_bucket", labels, Some(("le", &le)), n);
        }
        self.x
            .line(self.name, "_bucket", labels, Some(("le", "+Inf")), &h.count);
        self.x.line(self.name, "_sum", labels, None, &h.sum);
        self.x.line(self.name, "_count", labels, None, &h.count);
        self
    }
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
